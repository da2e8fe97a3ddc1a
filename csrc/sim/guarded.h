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

// Runs `nstep` mj_step calls. Returns false when MuJoCo raised an error or the step diverged (a
// bad-qpos/qvel/qacc warning was raised during the call, or qpos/qvel hold a non-finite value); the data is
// then reset with mj_resetData, so whatever restarts the env next starts from a sane state.
bool step_guarded(const mjModel* m, mjData* d, int nstep);

// Runs `nstep` physics steps split around a controller, as MuJoCo intends for state-feedback control: per
// step mj_step1 (positions, velocities, mass matrix, bias forces at the current state), then `control(ctx, k)`
// (writes d->ctrl for substep k), then mj_step2 (actuation, constraints, integration). Same trap and
// divergence test as step_guarded. `control` must not own objects with destructors (a MuJoCo error jumps over it).
bool step_controlled_guarded(const mjModel* m, mjData* d, int nstep, void (*control)(void* ctx, int substep), void* ctx);

// Runs `fn(m, d)` (a kinematics or forward pass) with the same error trap; false when MuJoCo raised an error.
bool call_guarded(void (*fn)(const mjModel*, mjData*), const mjModel* m, mjData* d);

// Runs `body(args)` (MuJoCo calls on no mjData, e.g. the renderer's) with the same error trap. Returns nullptr,
// or MuJoCo's error message (valid until the calling thread's next trapped error) when it raised one.
const char* call_trapped(void (*body)(void*), void* args);

}  // namespace ript::sim
