#include "sim/guarded.h"

#include <cmath>
#include <csetjmp>
#include <cstdio>

// MuJoCo's thread-local error/warning hooks (exported by libmujoco, declared in no public header). They are
// what MuJoCo's own Python bindings use to turn mju_error into an exception on the calling thread only.
extern "C" {
MJAPI void (*_mjPRIVATE__get_tls_error_fn(void))(const char*);
MJAPI void _mjPRIVATE__set_tls_error_fn(void (*h)(const char*));
MJAPI void (*_mjPRIVATE__get_tls_warning_fn(void))(const char*);
MJAPI void _mjPRIVATE__set_tls_warning_fn(void (*h)(const char*));
}

namespace ript::sim {
namespace {

thread_local std::jmp_buf* tls_landing = nullptr;
thread_local char tls_message[512] = "";

void jump_back(const char* message) {
  std::snprintf(tls_message, sizeof(tls_message), "%s", message != nullptr ? message : "");
  if (tls_landing != nullptr) std::longjmp(*tls_landing, 1);
}

void ignore_warning(const char*) {}

// Installs the hooks for the lifetime of one guarded call and restores the previous ones afterwards.
// No object with a destructor may live between setjmp and longjmp, so the callers below keep only PODs there.
struct Hooks {
  void (*error)(const char*);
  void (*warning)(const char*);
  std::jmp_buf* landing;
};

Hooks install(std::jmp_buf* landing) {
  Hooks saved{_mjPRIVATE__get_tls_error_fn(), _mjPRIVATE__get_tls_warning_fn(), tls_landing};
  _mjPRIVATE__set_tls_error_fn(jump_back);
  _mjPRIVATE__set_tls_warning_fn(ignore_warning);
  tls_landing = landing;
  return saved;
}

void restore(const Hooks& saved) {
  _mjPRIVATE__set_tls_error_fn(saved.error);
  _mjPRIVATE__set_tls_warning_fn(saved.warning);
  tls_landing = saved.landing;
}

bool all_finite(const mjtNum* v, int n) {
  for (int i = 0; i < n; ++i) {
    if (!std::isfinite(v[i])) return false;
  }
  return true;
}

constexpr int kDivergenceWarnings[] = {mjWARN_BADQPOS, mjWARN_BADQVEL, mjWARN_BADQACC};
constexpr int kNumDivergenceWarnings = 3;

// Divergence is told by a divergence warning raised during the call, counted from zero: comparing counts
// before and after is not enough, because on a divergence MuJoCo resets the data (counts back to 0) and then
// sets its own count to 1, so an env that already held a count of 1 would look unchanged.
struct DivergenceCounts {
  int number[kNumDivergenceWarnings];
};

DivergenceCounts take_divergence_counts(mjData* d) {
  DivergenceCounts taken{};
  for (int i = 0; i < kNumDivergenceWarnings; ++i) {
    taken.number[i] = d->warning[kDivergenceWarnings[i]].number;
    d->warning[kDivergenceWarnings[i]].number = 0;
  }
  return taken;
}

bool any_count(const DivergenceCounts& counts) {
  for (int n : counts.number) {
    if (n > 0) return true;
  }
  return false;
}

// Makes the counts cumulative again (what users reading mjData.warning expect).
void add_counts(mjData* d, const DivergenceCounts& a, const DivergenceCounts& b) {
  for (int i = 0; i < kNumDivergenceWarnings; ++i) d->warning[kDivergenceWarnings[i]].number += a.number[i] + b.number[i];
}

// The one trapped region: runs `body(args)`; true when MuJoCo raised an error (tls_message says which).
bool raised_in(void (*body)(void*), void* args) {
  std::jmp_buf landing;
  const Hooks saved = install(&landing);
  volatile bool raised = false;
  if (setjmp(landing) == 0) {
    body(args);
  } else {
    raised = true;
  }
  restore(saved);
  return raised;
}

// A trapped call on a simulation: on an mju_error, resets the data and returns false.
bool run_trapped(void (*body)(void*), void* args, const mjModel* m, mjData* d) {
  const bool raised = raised_in(body, args);
  if (raised) mj_resetData(m, d);
  return !raised;
}

struct Call {
  void (*fn)(const mjModel*, mjData*);
  const mjModel* m;
  mjData* d;
  int times;
};

void repeat_call(void* p) {
  const Call* c = static_cast<const Call*>(p);
  for (int i = 0; i < c->times; ++i) c->fn(c->m, c->d);
}

struct ControlledSteps {
  const mjModel* m;
  mjData* d;
  int nstep;
  void (*control)(void*, int);
  void* ctx;
};

void run_controlled(void* p) {
  const ControlledSteps* c = static_cast<const ControlledSteps*>(p);
  for (int k = 0; k < c->nstep; ++k) {
    mj_step1(c->m, c->d);
    c->control(c->ctx, k);
    mj_step2(c->m, c->d);
  }
}

// A trapped call followed by the divergence test. On failure the data is reset (mj_resetData): after a
// divergence MuJoCo has reset it only at the failing substep and the remaining substeps went on integrating
// garbage, and the next reset of the env (e.g. MetaWorld's, whose first pass runs before its own
// mj_resetData) must start from a sane state.
bool run_checked(void (*body)(void*), void* args, const mjModel* m, mjData* d) {
  const DivergenceCounts before = take_divergence_counts(d);
  const bool finished = run_trapped(body, args, m, d);
  const DivergenceCounts during = take_divergence_counts(d);
  const bool ok = finished && !any_count(during) && all_finite(d->qpos, m->nq) && all_finite(d->qvel, m->nv);
  if (!ok) mj_resetData(m, d);
  add_counts(d, before, during);
  return ok;
}

}  // namespace

bool step_guarded(const mjModel* m, mjData* d, int nstep) {
  Call call{mj_step, m, d, nstep};
  return run_checked(repeat_call, &call, m, d);
}

bool step_controlled_guarded(const mjModel* m, mjData* d, int nstep, void (*control)(void* ctx, int substep), void* ctx) {
  ControlledSteps steps{m, d, nstep, control, ctx};
  return run_checked(run_controlled, &steps, m, d);
}

bool call_guarded(void (*fn)(const mjModel*, mjData*), const mjModel* m, mjData* d) {
  Call call{fn, m, d, 1};
  return run_trapped(repeat_call, &call, m, d);
}

const char* call_trapped(void (*body)(void*), void* args) { return raised_in(body, args) ? tls_message : nullptr; }

}  // namespace ript::sim
