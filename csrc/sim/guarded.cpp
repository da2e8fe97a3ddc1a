#include "sim/guarded.h"

#include <cmath>
#include <csetjmp>

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

void jump_back(const char*) {
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

int divergence_warnings(const mjData* d) {
  return d->warning[mjWARN_BADQPOS].number + d->warning[mjWARN_BADQVEL].number + d->warning[mjWARN_BADQACC].number;
}

// The one trapped region: runs `body(args)`; on an mju_error, resets the data and returns false.
bool run_trapped(void (*body)(void*), void* args, const mjModel* m, mjData* d) {
  std::jmp_buf landing;
  const Hooks saved = install(&landing);
  volatile bool raised = false;
  if (setjmp(landing) == 0) {
    body(args);
  } else {
    raised = true;
  }
  restore(saved);
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

}  // namespace

bool step_guarded(const mjModel* m, mjData* d, int nstep) {
  const int warnings_before = divergence_warnings(d);
  Call call{mj_step, m, d, nstep};
  if (!run_trapped(repeat_call, &call, m, d)) return false;
  return divergence_warnings(d) == warnings_before && all_finite(d->qpos, m->nq) && all_finite(d->qvel, m->nv);
}

bool call_guarded(void (*fn)(const mjModel*, mjData*), const mjModel* m, mjData* d) {
  Call call{fn, m, d, 1};
  return run_trapped(repeat_call, &call, m, d);
}

}  // namespace ript::sim
