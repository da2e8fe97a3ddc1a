// Fault isolation for one simulation: MuJoCo calls made through these helpers cannot take the process down
// and report whether the simulation diverged.
//
// MuJoCo reports fatal problems (e.g. an exhausted arena) through mju_error, whose default handler exits the
// process. On the calling thread we point MuJoCo's thread-local error hook at a longjmp back into
// `step_guarded`, so such an error fails that one env; warnings from our threads are counted in
// mjData.warning as usual but not printed (the env reports them as info["sim_error"] instead).
#pragma once

#include <mujoco/mujoco.h>

namespace ript::sim {

// Runs `nstep` mj_step calls. Returns false when MuJoCo raised an error (the data is then reset with
// mj_resetData, its arena being in an unknown state) or the step diverged: a bad-qpos/qvel/qacc warning was
// raised (MuJoCo then resets the data itself) or qpos/qvel hold a non-finite value.
bool step_guarded(const mjModel* m, mjData* d, int nstep);

// Runs `fn(m, d)` (a kinematics or forward pass) with the same error trap; false when MuJoCo raised an error.
bool call_guarded(void (*fn)(const mjModel*, mjData*), const mjModel* m, mjData* d);

}  // namespace ript::sim
