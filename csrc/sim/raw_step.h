// Plain batch physics: nstep mj_step calls on each of N (mjModel*, mjData*) pairs, spread over the core's
// pool. No controller, observation or success: the physics floor the batched envs are measured against
// (bench/bench_engine.py compares it with a Python loop of mj_step and with mujoco.rollout).
#pragma once

#include <cstdint>
#include <vector>

namespace ript::sim {

// Returns, per env, whether the physics stayed finite (false: diverged or MuJoCo raised an error).
std::vector<bool> step_raw(const std::vector<uintptr_t>& models, const std::vector<uintptr_t>& datas, int32_t nstep);

}  // namespace ript::sim
