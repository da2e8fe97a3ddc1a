// The context vector: one flat float64 row holding everything needed to restart an episode exactly (paper
// Sec. 4.1: a context is an initial state plus the task's goal). It is what env.get_state() returns per env,
// what reset(options={"init_state": ...}) takes, and what a demo file stores as states[0].
//
// Layout version 1 (offsets in float64 elements; docs/ARCHITECTURE.md repeats this table):
//   [0]  layout version (1)            [5] nsite: model sites
//   [1]  task id (index in the task    [6] nparam: episode parameters
//        table, ript_fast.envs)        [7] cur_dim: current-observation size
//   [2]  used length L (header incl.)  [8] nrand: task sampler's random vector size
//   [3]  nstate: mj_stateSize(INTEGRATION)   [9] reserved (0)
//   [4]  nbody: model bodies
//   then: target(3) | params(nparam) | rand_vec(nrand) | reset obs cur(cur_dim) | reset goal(3) |
//         physics: mj_getState(mjSTATE_INTEGRATION)(nstate) | model.body_pos(3 nbody) | model.site_pos(3 nsite)
//   and zeros up to the row width (rows of a mixed-task batch share the widest length).
// The physics part is MuJoCo's full integration state (time, qpos, qvel, act, warmstart, ctrl, applied
// forces, mocap pose, ...) and body_pos/site_pos are the model fields MetaWorld's resets edit, so restoring a
// row reproduces the episode bit for bit.
#pragma once

#include <mujoco/mujoco.h>

#include <cstdint>
#include <string>

namespace ript::sim {

constexpr unsigned kContextStateSpec = mjSTATE_INTEGRATION;

struct ContextLayout {
  static constexpr int64_t kHeader = 10;
  static constexpr int64_t kVersion = 1;

  int64_t task_id = -1, nstate = 0, nbody = 0, nsite = 0, nparam = 0, cur_dim = 0, nrand = 0;

  static ContextLayout of(const mjModel* m, int64_t task_id, int64_t nparam, int64_t cur_dim, int64_t nrand);

  int64_t target() const { return kHeader; }
  int64_t params() const { return target() + 3; }
  int64_t rand_vec() const { return params() + nparam; }
  int64_t cur0() const { return rand_vec() + nrand; }
  int64_t goal0() const { return cur0() + cur_dim; }
  int64_t state() const { return goal0() + 3; }
  int64_t body_pos() const { return state() + nstate; }
  int64_t site_pos() const { return body_pos() + 3 * nbody; }
  int64_t length() const { return site_pos() + 3 * nsite; }

  void write_header(double* row) const;
  // "" when `row` (of width `width`) was written with this layout, else what differs, in words.
  std::string mismatch(const double* row, int64_t width) const;
};

}  // namespace ript::sim
