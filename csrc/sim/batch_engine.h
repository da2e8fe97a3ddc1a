// The skeleton of a batch of N simulations stepped together on the core's thread pool, written once for both
// families (MetaWorld's BatchSim, LIBERO's LiberoSim): the step loop (every active env's action checked before
// any env moves; an inactive env untouched but for reward 0), one env's failure, the per-step outcome outputs,
// and restarts from context rows (the env ids and every row validated before any env changes, then the envs
// restarted in the pool and their context outputs set). A family supplies how one env steps, what makes a
// context row unusable for an env, and how one env restarts from a row.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sim/context_layout.h"

namespace ript::sim {

// Preallocated outputs, one row per env, written in place by every call (owned by the Python side).
struct Outputs {
  double* obs = nullptr;          // (N, obs_dim)
  double* reward = nullptr;       // (N,)
  bool* terminated = nullptr;     // (N,)
  bool* truncated = nullptr;      // (N,)
  bool* success = nullptr;        // (N,)
  bool* sim_error = nullptr;      // (N,)
  double* context = nullptr;      // (N, context_dim): each env's current episode as a context vector
};

class BatchEngine {
 public:
  virtual ~BatchEngine() = default;
  BatchEngine(const BatchEngine&) = delete;
  BatchEngine& operator=(const BatchEngine&) = delete;

  int64_t size() const { return size_; }
  int64_t context_dim() const { return context_dim_; }

  // Steps every env with active[i] true; the others are not touched except reward[i] = 0. actions: (N,
  // action_dim) C-contiguous float32 or float64. Throws std::invalid_argument before stepping anything if an
  // active env's action is not finite.
  void step(const void* actions, bool actions_are_float32, const bool* active);

  // Restarts envs env_ids[r] from context rows states[r * stride ...], exactly as when each was captured.
  // Validates the ids and every row first (std::invalid_argument naming the row) and changes nothing if one is
  // bad.
  void restore(const double* states, int64_t rows, int64_t stride, const int64_t* env_ids);

 protected:
  BatchEngine(int64_t size, int action_dim, Outputs out);

  // One active env's step; its action is row i of `actions`.
  virtual void step_one(int64_t i, const void* actions, bool actions_are_float32) = 0;
  // Why context row `row` (of `stride` values) cannot restart env `env`: "" when it can.
  virtual std::string unusable(int64_t env, const double* row, int64_t stride) const = 0;
  // Env `env` restarted from a validated row (its context output is then set to the row).
  virtual void restore_one(int64_t env, const double* row) = 0;

  // The context layout of each env, added in env order by the family's constructor.
  void add_layout(const ContextLayout& layout);
  const ContextLayout& layout(int64_t i) const { return layouts_[static_cast<size_t>(i)]; }
  // Throws std::invalid_argument naming `what` when an id is outside the batch or given twice.
  void check_env_ids(const int64_t* env_ids, int64_t count, const char* what) const;
  // Env i's simulation failed: reward 0, truncated, sim_error; its observation row keeps its last value.
  void fail_one(int64_t i);
  // Env i's step ended: success (reward 1), terminated when it succeeded and successes end episodes, truncated
  // when it is out of time.
  void write_outcome(int64_t i, bool success, bool terminate_on_success, bool out_of_time);
  // Env i starts an episode: nothing happened yet.
  void clear_outcome(int64_t i);
  // Env i's context output: `row`'s used length (its layout's), zero-padded to the batch's context width.
  void write_context(int64_t i, const double* row);

  Outputs out_;

 private:
  int64_t size_;
  int action_dim_;
  std::vector<ContextLayout> layouts_;
  int64_t context_dim_ = 0;
};

}  // namespace ript::sim
