// A batch of N LIBERO scenes (a Panda under robosuite's OSC_POSE) stepped together on the core's thread pool.
//
// LIBERO's Python builds each task's MuJoCo model once (ript_fast/envs/libero/*.py); from then on one control
// step of every env runs here, independently per env (so results do not depend on the thread count):
// `substeps` x (mj_step1, OSC_POSE + gripper control, mj_step2), the goal predicates on the state the last
// substep left (as LIBERO's check_success reads it), then a kinematics pass so that the observation and the
// images show the state the step ended in. Contexts are the engine's context vectors (context_layout.h) whose
// params section holds the controller state (goal orientation 9, gripper command 2, stale flag 1); LIBERO's own init states
// ([time, qpos, qvel] rows of its *.pruned_init files) are turned into contexts by load_init_states.
#pragma once

#include <mujoco/mujoco.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "sim/batch_engine.h"
#include "sim/context_layout.h"
#include "sim/goal_predicates.h"
#include "sim/osc_control.h"

namespace ript::sim {

// Proprioception, robosuite's names: joint_pos(7) | eef_pos(3) | eef_quat(4, x y z w) | gripper_qpos(2).
constexpr int kLiberoObsDim = 16;
constexpr int kLiberoParams = 12;  // OscState.goal_ori (9), .gripper (2), .stale (1)

struct LiberoEnvConfig {
  uintptr_t model = 0;  // mujoco.MjModel._address; read only, so envs of a task may share it
  uintptr_t data = 0;   // mujoco.MjData._address
  int32_t task_id = -1;
  OscConfig control;
  OscState initial;                          // controller state at the start of a LIBERO init state
  std::array<int32_t, 2> gripper_qpos{-1, -1};  // finger joints' qpos addresses
  int32_t eef_body = -1;                     // the body whose orientation is observed (robosuite's eef_quat)
  std::vector<GoalTerm> goal;                // conjunction; empty = never succeeds
  int32_t max_steps = 600;
  bool terminate_on_success = true;
};

class LiberoSim final : public BatchEngine {
 public:
  LiberoSim(std::vector<LiberoEnvConfig> envs, Outputs out);

  static int64_t context_dim_of(const std::vector<LiberoEnvConfig>& envs);

  // step(actions (N, 7), ...) and restore(...) are the engine's (batch_engine.h). Models are never written (envs
  // of a task share one), so a restore's row must carry the model's own body_pos/site_pos.

  // Starts envs env_ids[r] from LIBERO init states rows[r] = [time, qpos(nq), qvel(nv)] (LIBERO's
  // set_init_state: the rest of the data reset, then a forward pass), with the config's initial controller
  // state, and captures their contexts. Validates every row first.
  void load_init_states(const double* rows, int64_t count, int64_t stride, const int64_t* env_ids);

  // Whether env i's goal holds on its data as it is now (what step() evaluates after the physics).
  bool goal_holds(int64_t i) const;

 private:
  void step_one(int64_t i, const void* actions, bool actions_are_float32) override;
  std::string unusable(int64_t env, const double* row, int64_t stride) const override;
  void restore_one(int64_t env, const double* row) override;

  void observe(int64_t i);
  void start_episode(int64_t i);
  void capture_context(int64_t i);

  std::vector<LiberoEnvConfig> envs_;
  std::vector<OscState> states_;
  std::vector<OscScratch> scratch_;
  std::vector<int32_t> steps_;
};

}  // namespace ript::sim
