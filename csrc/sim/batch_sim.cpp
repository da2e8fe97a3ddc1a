#include "sim/batch_sim.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "common/thread_pool.h"
#include "sim/actions.h"
#include "sim/guarded.h"

namespace ript::sim {

namespace {

const mjModel* model_of(const EnvConfig& c) { return reinterpret_cast<const mjModel*>(c.model); }
mjData* data_of(const EnvConfig& c) { return reinterpret_cast<mjData*>(c.data); }

// MetaWorld clips and scales the action in the action's own dtype (numpy keeps float32 when multiplying a
// float32 array by a Python float), and only then adds it to the float64 mocap position.
template <typename T>
double mocap_delta(T a, double scale) {
  const T clipped = std::min(std::max(a, static_cast<T>(-1)), static_cast<T>(1));
  return static_cast<double>(clipped * static_cast<T>(scale));
}

void apply_control(const MocapControl& c, const mjModel* m, mjData* d, const double delta[3], double grip) {
  for (int r = 0; r < m->nmocap; ++r) {
    for (int k = 0; k < 3; ++k) d->mocap_pos[3 * r + k] += delta[k];
  }
  for (int k = 0; k < 3; ++k) {
    double& p = d->mocap_pos[3 * c.mocap + k];
    p = std::min(std::max(p, c.low[k]), c.high[k]);
  }
  for (int r = 0; r < m->nmocap; ++r) std::copy(c.quat.begin(), c.quat.end(), d->mocap_quat + 4 * r);
  for (int k = 0; k < 2 && k < m->nu; ++k) d->ctrl[k] = c.gripper_sign[k] * grip;
}

}  // namespace

BatchSim::BatchSim(std::vector<EnvConfig> envs, Outputs out)
    : BatchEngine(static_cast<int64_t>(envs.size()), 4, out), envs_(std::move(envs)) {
  if (envs_.empty()) throw std::invalid_argument("BatchSim: needs at least one env");
  obs_dim_ = envs_[0].obs.obs_dim();
  episodes_.resize(envs_.size());
  for (size_t i = 0; i < envs_.size(); ++i) {
    const EnvConfig& c = envs_[i];
    const std::string who = "env " + std::to_string(i);
    if (c.model == 0 || c.data == 0) throw std::invalid_argument(who + ": null model or data address");
    if (c.obs.obs_dim() != obs_dim_) throw std::invalid_argument(who + ": observation size differs from env 0");
    if (static_cast<int64_t>(c.obs.low.size()) != obs_dim_ || static_cast<int64_t>(c.obs.high.size()) != obs_dim_) {
      throw std::invalid_argument(who + ": obs low/high must have obs_dim values");
    }
    if (static_cast<int32_t>(c.obs.objects.size()) > c.obs.object_slots) {
      throw std::invalid_argument(who + ": more objects than observation slots");
    }
    if (c.control.frame_skip < 1) throw std::invalid_argument(who + ": frame_skip must be >= 1");
    if (c.max_steps < 1) throw std::invalid_argument(who + ": max_steps must be >= 1");
    const mjModel* m = model_of(c);
    if (c.control.mocap < 0 || c.control.mocap >= m->nmocap) throw std::invalid_argument(who + ": bad mocap row");
    add_layout(ContextLayout::of(m, c.task_id, c.n_params, c.obs.cur_dim(), c.n_rand));
    Episode& e = episodes_[i];
    e.params.assign(static_cast<size_t>(c.n_params), 0.0);
    e.rand_vec.assign(static_cast<size_t>(c.n_rand), 0.0);
    e.prev.assign(static_cast<size_t>(c.obs.cur_dim()), 0.0);
  }
}

int64_t BatchSim::context_dim_of(const std::vector<EnvConfig>& envs) {
  int64_t dim = 0;
  for (const EnvConfig& c : envs) {
    if (c.model == 0) throw std::invalid_argument("context_dim_of: null model address");
    dim = std::max(dim, ContextLayout::of(model_of(c), c.task_id, c.n_params, c.obs.cur_dim(), c.n_rand).length());
  }
  return dim;
}

Vec3 BatchSim::goal_of(int64_t i) const {
  const EnvConfig& c = envs_[static_cast<size_t>(i)];
  const Episode& e = episodes_[static_cast<size_t>(i)];
  if (c.goal.kind == PointKind::kGoal) return e.target;
  EpisodeValues ep{e.target, &e.params, nullptr};
  return eval_point(c.goal, model_of(c), data_of(c), ep);
}

void BatchSim::step_one(int64_t i, const void* actions, bool actions_are_float32) {
  const EnvConfig& c = envs_[static_cast<size_t>(i)];
  double act[4];
  for (int k = 0; k < 3; ++k) {
    act[k] = actions_are_float32
                 ? mocap_delta(static_cast<const float*>(actions)[4 * i + k], c.control.action_scale)
                 : mocap_delta(static_cast<const double*>(actions)[4 * i + k], c.control.action_scale);
  }
  act[3] = action_value(actions, actions_are_float32, i, 4, 3);
  advance(i, act);
}

// act = (mocap delta xyz, gripper command); the observation row keeps its last value if the physics fails.
void BatchSim::advance(int64_t i, const double act[4]) {
  const EnvConfig& c = envs_[static_cast<size_t>(i)];
  Episode& e = episodes_[static_cast<size_t>(i)];
  const mjModel* m = model_of(c);
  mjData* d = data_of(c);
  apply_control(c.control, m, d, act, act[3]);
  e.steps += 1;
  // After mj_step the frame positions are one stage stale, so MetaWorld runs mj_forward before observing.
  // Kinematics alone would give the same observation now, but mj_forward also rewrites qacc_warmstart,
  // which seeds the next step's constraint solver: without it, contact-rich tasks drift from MetaWorld's
  // trajectory (measured: 7e-3 in pick-place obs within 150 steps). So the full pass it is.
  const bool ok = step_guarded(m, d, c.control.frame_skip) && call_guarded(mj_forward, m, d);
  if (!ok) {
    fail_one(i);
    return;
  }
  const int64_t cur_dim = c.obs.cur_dim();
  double* row = out_.obs + i * obs_dim_;
  EpisodeValues ep{goal_of(i), &e.params, row};
  gather_current(c.obs, m, d, ep, row);
  std::copy(e.prev.begin(), e.prev.end(), row + cur_dim);
  std::copy(row, row + cur_dim, e.prev.begin());
  for (int k = 0; k < 3; ++k) row[2 * cur_dim + k] = c.obs.goal_visible ? ep.goal[k] : 0.0;
  for (int64_t k = 0; k < obs_dim_; ++k) row[k] = std::min(std::max(row[k], c.obs.low[k]), c.obs.high[k]);
  bool success = !c.success.empty();
  for (const Term& t : c.success) success = success && eval_term(t, m, d, ep);
  write_outcome(i, success, c.terminate_on_success, e.steps >= c.max_steps);
}

void BatchSim::write_reset_obs(int64_t i, const double* cur, const Vec3& goal) {
  const EnvConfig& c = envs_[static_cast<size_t>(i)];
  const int64_t cur_dim = c.obs.cur_dim();
  double* row = out_.obs + i * obs_dim_;
  std::copy(cur, cur + cur_dim, row);
  std::copy(cur, cur + cur_dim, row + cur_dim);
  for (int k = 0; k < 3; ++k) row[2 * cur_dim + k] = c.obs.goal_visible ? goal[k] : 0.0;
  Episode& e = episodes_[static_cast<size_t>(i)];
  std::copy(cur, cur + cur_dim, e.prev.begin());
  e.steps = 0;
  clear_outcome(i);
}

void BatchSim::capture_context(int64_t i, const double* cur, const Vec3& goal) {
  const EnvConfig& c = envs_[static_cast<size_t>(i)];
  const Episode& e = episodes_[static_cast<size_t>(i)];
  const ContextLayout& l = layout(i);
  const mjModel* m = model_of(c);
  double* row = out_.context + i * context_dim();
  std::fill(row, row + context_dim(), 0.0);
  l.write_header(row);
  std::copy(e.target.begin(), e.target.end(), row + l.target());
  std::copy(e.params.begin(), e.params.end(), row + l.params());
  std::copy(e.rand_vec.begin(), e.rand_vec.end(), row + l.rand_vec());
  std::copy(cur, cur + l.cur_dim, row + l.cur0());
  std::copy(goal.begin(), goal.end(), row + l.goal0());
  mj_getState(m, data_of(c), row + l.state(), kContextStateSpec);
  std::copy(m->body_pos, m->body_pos + 3 * m->nbody, row + l.body_pos());
  std::copy(m->site_pos, m->site_pos + 3 * m->nsite, row + l.site_pos());
}

void BatchSim::begin_episode(int64_t i, const Vec3& target, const std::vector<double>& params,
                             const std::vector<double>& rand_vec) {
  if (i < 0 || i >= size()) throw std::out_of_range("begin_episode: env index " + std::to_string(i));
  const EnvConfig& c = envs_[static_cast<size_t>(i)];
  Episode& e = episodes_[static_cast<size_t>(i)];
  if (static_cast<int32_t>(params.size()) != c.n_params || static_cast<int32_t>(rand_vec.size()) != c.n_rand) {
    throw std::invalid_argument("begin_episode: env " + std::to_string(i) + " expects " +
                                std::to_string(c.n_params) + " params and " + std::to_string(c.n_rand) +
                                " random-vector values");
  }
  e.target = target;
  e.params = params;
  e.rand_vec = rand_vec;
  // MetaWorld's reset observation reads mjData as the reset left it, without a kinematics pass (for some
  // tasks that is one stage stale); we reproduce it as it is, and the context stores it.
  std::vector<double> cur(static_cast<size_t>(c.obs.cur_dim()));
  const Vec3 goal = goal_of(i);
  EpisodeValues ep{goal, &e.params, nullptr};
  gather_current(c.obs, model_of(c), data_of(c), ep, cur.data());
  write_reset_obs(i, cur.data(), goal);
  capture_context(i, cur.data(), goal);
}

std::string BatchSim::unusable(int64_t env, const double* row, int64_t stride) const {
  return layout(env).mismatch(row, stride);
}

void BatchSim::restore_one(int64_t env, const double* row) {
  const EnvConfig& c = envs_[static_cast<size_t>(env)];
  const ContextLayout& l = layout(env);
  Episode& e = episodes_[static_cast<size_t>(env)];
  mjModel* m = reinterpret_cast<mjModel*>(c.model);
  std::copy(row + l.body_pos(), row + l.body_pos() + 3 * l.nbody, m->body_pos);
  std::copy(row + l.site_pos(), row + l.site_pos() + 3 * l.nsite, m->site_pos);
  mj_setState(m, data_of(c), row + l.state(), kContextStateSpec);
  std::copy(row + l.target(), row + l.target() + 3, e.target.begin());
  std::copy(row + l.params(), row + l.params() + l.nparam, e.params.begin());
  std::copy(row + l.rand_vec(), row + l.rand_vec() + l.nrand, e.rand_vec.begin());
  const Vec3 goal{row[l.goal0()], row[l.goal0() + 1], row[l.goal0() + 2]};
  write_reset_obs(env, row + l.cur0(), goal);
}

void settle_mocap(const mjModel* m, mjData* d, int32_t mocap, const Vec3& pos, const Vec4& quat,
                  const std::array<double, 2>& ctrl, int32_t iterations, int32_t frame_skip) {
  if (mocap < 0 || mocap >= m->nmocap) throw std::invalid_argument("settle_mocap: bad mocap row");
  if (m->nu != 2) throw std::invalid_argument("settle_mocap: the model must have 2 actuators (the gripper)");
  for (int32_t it = 0; it < iterations; ++it) {
    std::copy(pos.begin(), pos.end(), d->mocap_pos + 3 * mocap);
    std::copy(quat.begin(), quat.end(), d->mocap_quat + 4 * mocap);
    d->ctrl[0] = ctrl[0];
    d->ctrl[1] = ctrl[1];
    if (!step_guarded(m, d, frame_skip)) throw std::runtime_error("settle_mocap: the simulation diverged");
  }
}

}  // namespace ript::sim
