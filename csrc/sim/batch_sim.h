// MetaWorld's family of the batch engine (batch_engine.h: the step loop, failures, outcomes and restarts).
//
// Each env is an (mjModel*, mjData*) pair owned by Python objects (a `mujoco.MjData`; a `mujoco.MjModel` or a
// `_C.sim.ModelView` of its task's shared model, model_view.h; models differ per task: mixed tasks in one
// batch), plus a description of how to drive it (a mocap arm: action -> mocap target + gripper control,
// frame_skip physics steps), what it observes and when it succeeds (task_spec.h). A step of the batch runs,
// per env and independently of the others: controller, frame_skip mj_step, mj_forward (as MetaWorld does: it
// also reseeds the solver's warm start, so skipping it would change the trajectory), the observation into a
// preallocated buffer row, and the success flag. Per-env work never depends on which thread runs it, so
// results are bitwise identical for any thread count.
#pragma once

#include <mujoco/mujoco.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "sim/batch_engine.h"
#include "sim/context_layout.h"
#include "sim/task_spec.h"

namespace ript::sim {

// MetaWorld's controller: mocap_pos[mocap] += scale * clip(a[:3], -1, 1), clipped to [low, high]; every
// mocap_quat row set to `quat`; ctrl[k] = gripper_sign[k] * a[3].
struct MocapControl {
  int32_t mocap = 0;
  double action_scale = 0.01;
  Vec3 low{0.0, 0.0, 0.0}, high{0.0, 0.0, 0.0};
  Vec4 quat{1.0, 0.0, 1.0, 0.0};
  std::array<double, 2> gripper_sign{1.0, -1.0};
  int32_t frame_skip = 5;
};

struct EnvConfig {
  uintptr_t model = 0;  // mujoco.MjModel._address
  uintptr_t data = 0;   // mujoco.MjData._address
  int32_t task_id = -1;
  MocapControl control;
  ObsSpec obs;
  // The goal: kGoal = the value fixed at reset; a body/site/geom point = read live after every step (some
  // MetaWorld tasks keep their target as a view into mjData).
  Point goal{PointKind::kGoal};
  std::vector<Term> success;  // conjunction; empty = never succeeds
  int32_t n_params = 0;       // episode parameters the success rule reads (kParam points)
  int32_t n_rand = 0;         // the task sampler's random vector, stored in the context only
  int32_t max_steps = 500;
  bool terminate_on_success = true;
};

class BatchSim final : public BatchEngine {
 public:
  BatchSim(std::vector<EnvConfig> envs, Outputs out);

  // Widest context row over these envs (the second dimension of the context buffer).
  static int64_t context_dim_of(const std::vector<EnvConfig>& envs);

  int64_t obs_dim() const { return obs_dim_; }
  const EnvConfig& config(int64_t i) const { return envs_.at(static_cast<size_t>(i)); }

  // Starts env i's episode from its mjData as it is now (right after the task's own reset): writes the reset
  // observation [cur, cur, goal] (unclipped, as MetaWorld's reset returns it) and captures the context.
  void begin_episode(int64_t i, const Vec3& target, const std::vector<double>& params,
                     const std::vector<double>& rand_vec);

  // step(actions (N, 4), ...) and restore(...) are the engine's (batch_engine.h): a restore sets the physics
  // state, the model fields, goal, parameters and the reset observation, exactly as when the context was captured.

 private:
  struct Episode {
    Vec3 target{0.0, 0.0, 0.0};
    std::vector<double> params, rand_vec, prev;
    int32_t steps = 0;
  };

  void step_one(int64_t i, const void* actions, bool actions_are_float32) override;
  std::string unusable(int64_t env, const double* row, int64_t stride) const override;
  void restore_one(int64_t env, const double* row) override;

  void advance(int64_t i, const double act[4]);
  Vec3 goal_of(int64_t i) const;
  void write_reset_obs(int64_t i, const double* cur, const Vec3& goal);
  void capture_context(int64_t i, const double* cur, const Vec3& goal);

  std::vector<EnvConfig> envs_;
  std::vector<Episode> episodes_;
  int64_t obs_dim_ = 0;
};

// MetaWorld's reset settling loop (SawyerXYZEnv._reset_hand) with the GIL released: `iterations` times, hold
// the mocap body at pos/quat, set ctrl, and run frame_skip mj_steps. Throws std::runtime_error on divergence.
void settle_mocap(const mjModel* m, mjData* d, int32_t mocap, const Vec3& pos, const Vec4& quat,
                  const std::array<double, 2>& ctrl, int32_t iterations, int32_t frame_skip);

}  // namespace ript::sim
