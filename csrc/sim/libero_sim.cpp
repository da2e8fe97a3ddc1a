#include "sim/libero_sim.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "common/thread_pool.h"
#include "sim/actions.h"
#include "sim/guarded.h"

namespace ript::sim {

namespace {

const mjModel* model_of(const LiberoEnvConfig& c) { return reinterpret_cast<const mjModel*>(c.model); }
mjData* data_of(const LiberoEnvConfig& c) { return reinterpret_cast<mjData*>(c.data); }

// What the substep callback needs (plain pointers: a MuJoCo error may jump over it).
struct Substep {
  const OscConfig* control;
  const mjModel* m;
  mjData* d;
  const double* action;
  OscState* state;
  OscScratch* scratch;
};

void control_substep(void* p, int k) {
  Substep* s = static_cast<Substep*>(p);
  if (k == 0) osc_set_goal(*s->control, s->m, s->d, s->action, *s->state);
  osc_apply(*s->control, s->m, s->d, s->action[kOscActionDim - 1], *s->state, *s->scratch);
}

void write_params(const OscState& s, double* out) {
  std::copy(s.goal_ori.begin(), s.goal_ori.end(), out);
  std::copy(s.gripper.begin(), s.gripper.end(), out + 9);
  out[11] = s.stale ? 1.0 : 0.0;
}

void read_params(const double* in, OscState& s) {
  std::copy(in, in + 9, s.goal_ori.begin());
  std::copy(in + 9, in + 11, s.gripper.begin());
  s.stale = in[11] != 0.0;
}

}  // namespace

LiberoSim::LiberoSim(std::vector<LiberoEnvConfig> envs, Outputs out)
    : BatchEngine(static_cast<int64_t>(envs.size()), kOscActionDim, out), envs_(std::move(envs)) {
  if (envs_.empty()) throw std::invalid_argument("LiberoSim: needs at least one env");
  const size_t n = envs_.size();
  states_.resize(n);
  scratch_.resize(n);
  steps_.assign(n, 0);
  for (size_t i = 0; i < n; ++i) {
    const LiberoEnvConfig& c = envs_[i];
    const std::string who = "env " + std::to_string(i) + ": ";
    if (c.model == 0 || c.data == 0) throw std::invalid_argument(who + "null model or data address");
    const mjModel* m = model_of(c);
    try {
      check_osc(c.control, m);
      for (size_t t = 0; t < c.goal.size(); ++t) check_goal_term(c.goal[t], m, static_cast<int64_t>(t));
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(who + e.what());
    }
    for (int32_t q : c.gripper_qpos) {
      if (q < 0 || q >= m->nq) throw std::invalid_argument(who + "gripper qpos address out of range");
    }
    if (c.eef_body < 0 || c.eef_body >= m->nbody) throw std::invalid_argument(who + "eef_body out of range");
    if (c.max_steps < 1) throw std::invalid_argument(who + "max_steps must be >= 1");
    scratch_[i].size_for(m);
    states_[i] = c.initial;
    add_layout(ContextLayout::of(m, c.task_id, kLiberoParams, kLiberoObsDim, 0));
  }
}

int64_t LiberoSim::context_dim_of(const std::vector<LiberoEnvConfig>& envs) {
  int64_t dim = 0;
  for (const LiberoEnvConfig& c : envs) {
    if (c.model == 0) throw std::invalid_argument("context_dim_of: null model address");
    dim = std::max(dim, ContextLayout::of(model_of(c), c.task_id, kLiberoParams, kLiberoObsDim, 0).length());
  }
  return dim;
}

void LiberoSim::step_one(int64_t i, const void* actions, bool actions_are_float32) {
  double act[kOscActionDim];
  for (int k = 0; k < kOscActionDim; ++k) act[k] = action_value(actions, actions_are_float32, i, kOscActionDim, k);
  const LiberoEnvConfig& c = envs_[static_cast<size_t>(i)];
  const mjModel* m = model_of(c);
  mjData* d = data_of(c);
  Substep sub{&c.control, m, d, act, &states_[static_cast<size_t>(i)], &scratch_[static_cast<size_t>(i)]};
  steps_[static_cast<size_t>(i)] += 1;
  if (!step_controlled_guarded(m, d, c.control.substeps, control_substep, &sub)) {
    fail_one(i);
    return;
  }
  const bool success = goal_holds(i);
  // Positions for the observation and the renderer: the state the step ended in. The next mj_step1 recomputes
  // everything from qpos/qvel, so this pass does not change the trajectory.
  if (!call_guarded(mj_kinematics, m, d)) {
    fail_one(i);
    return;
  }
  observe(i);
  write_outcome(i, success, c.terminate_on_success, steps_[static_cast<size_t>(i)] >= c.max_steps);
}

bool LiberoSim::goal_holds(int64_t i) const {
  if (i < 0 || i >= size()) throw std::out_of_range("goal_holds: env index " + std::to_string(i));
  const LiberoEnvConfig& c = envs_[static_cast<size_t>(i)];
  bool holds = !c.goal.empty();
  for (const GoalTerm& t : c.goal) holds = eval_goal_term(t, model_of(c), data_of(c)) && holds;
  return holds;
}

void LiberoSim::observe(int64_t i) {
  const LiberoEnvConfig& c = envs_[static_cast<size_t>(i)];
  const mjData* d = data_of(c);
  double* row = out_.obs + i * kLiberoObsDim;
  for (int k = 0; k < kArmDof; ++k) row[k] = d->qpos[c.control.qpos[k]];
  std::copy(d->site_xpos + 3 * c.control.eef_site, d->site_xpos + 3 * c.control.eef_site + 3, row + 7);
  const double* q = d->xquat + 4 * c.eef_body;  // MuJoCo's w x y z -> robosuite's x y z w
  row[10] = q[1];
  row[11] = q[2];
  row[12] = q[3];
  row[13] = q[0];
  row[14] = d->qpos[c.gripper_qpos[0]];
  row[15] = d->qpos[c.gripper_qpos[1]];
}

void LiberoSim::start_episode(int64_t i) {
  steps_[static_cast<size_t>(i)] = 0;
  clear_outcome(i);
}

void LiberoSim::capture_context(int64_t i) {
  const LiberoEnvConfig& c = envs_[static_cast<size_t>(i)];
  const ContextLayout& l = layout(i);
  const mjModel* m = model_of(c);
  double* row = out_.context + i * context_dim();
  std::fill(row, row + context_dim(), 0.0);
  l.write_header(row);
  write_params(states_[static_cast<size_t>(i)], row + l.params());
  std::copy(out_.obs + i * kLiberoObsDim, out_.obs + (i + 1) * kLiberoObsDim, row + l.cur0());
  mj_getState(m, data_of(c), row + l.state(), kContextStateSpec);
  std::copy(m->body_pos, m->body_pos + 3 * m->nbody, row + l.body_pos());
  std::copy(m->site_pos, m->site_pos + 3 * m->nsite, row + l.site_pos());
}

void LiberoSim::load_init_states(const double* rows, int64_t count, int64_t stride, const int64_t* env_ids) {
  check_env_ids(env_ids, count, "init_state");
  for (int64_t r = 0; r < count; ++r) {
    const mjModel* m = model_of(envs_[static_cast<size_t>(env_ids[r])]);
    const int64_t need = 1 + m->nq + m->nv;
    if (stride < need) {
      throw std::invalid_argument("init_state: row " + std::to_string(r) + " has " + std::to_string(stride) +
                                  " values, env " + std::to_string(env_ids[r]) + " needs 1 + nq + nv = " +
                                  std::to_string(need));
    }
    for (int64_t k = 0; k < need; ++k) {
      if (!std::isfinite(rows[r * stride + k])) {
        throw std::invalid_argument("init_state: row " + std::to_string(r) + " holds a non-finite value");
      }
    }
  }
  parallel_for(count, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t i = env_ids[r];
      const LiberoEnvConfig& c = envs_[static_cast<size_t>(i)];
      const mjModel* m = model_of(c);
      mjData* d = data_of(c);
      const double* row = rows + r * stride;
      mj_resetData(m, d);
      d->time = row[0];
      std::copy(row + 1, row + 1 + m->nq, d->qpos);
      std::copy(row + 1 + m->nq, row + 1 + m->nq + m->nv, d->qvel);
      states_[static_cast<size_t>(i)] = c.initial;
      start_episode(i);
      if (!call_guarded(mj_forward, m, d)) {
        fail_one(i);
        continue;
      }
      observe(i);
      capture_context(i);
    }
  });
}

std::string LiberoSim::unusable(int64_t env, const double* row, int64_t stride) const {
  const ContextLayout& l = layout(env);
  const std::string why = l.mismatch(row, stride);
  if (!why.empty()) return why;
  // Envs of a task share one model (a LIBERO model is ~200 MB, mostly textures), so a restart never edits it:
  // the context's fixture placement must be the model's own.
  const mjModel* m = model_of(envs_[static_cast<size_t>(env)]);
  if (!std::equal(m->body_pos, m->body_pos + 3 * m->nbody, row + l.body_pos()) ||
      !std::equal(m->site_pos, m->site_pos + 3 * m->nsite, row + l.site_pos())) {
    return "was captured with other fixture placements (body_pos/site_pos) than this env's model";
  }
  return "";
}

void LiberoSim::restore_one(int64_t env, const double* row) {
  const LiberoEnvConfig& c = envs_[static_cast<size_t>(env)];
  const ContextLayout& l = layout(env);
  const mjModel* m = model_of(c);
  mjData* d = data_of(c);
  mj_setState(m, d, row + l.state(), kContextStateSpec);
  read_params(row + l.params(), states_[static_cast<size_t>(env)]);
  start_episode(env);
  mj_kinematics(m, d);  // positions for the renderer; the physics state is exactly the captured one
  std::copy(row + l.cur0(), row + l.cur0() + kLiberoObsDim, out_.obs + env * kLiberoObsDim);
}

}  // namespace ript::sim
