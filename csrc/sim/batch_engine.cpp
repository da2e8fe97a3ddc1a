#include "sim/batch_engine.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "common/thread_pool.h"
#include "sim/actions.h"

namespace ript::sim {

BatchEngine::BatchEngine(int64_t size, int action_dim, Outputs out)
    : out_(out), size_(size), action_dim_(action_dim) {}

void BatchEngine::step(const void* actions, bool actions_are_float32, const bool* active) {
  require_finite_actions(actions, actions_are_float32, active, size_, action_dim_);
  parallel_for(size_, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      if (active[i]) {
        step_one(i, actions, actions_are_float32);
      } else {
        out_.reward[i] = 0.0;
      }
    }
  });
}

void BatchEngine::restore(const double* states, int64_t rows, int64_t stride, const int64_t* env_ids) {
  check_env_ids(env_ids, rows, "init_state");
  for (int64_t r = 0; r < rows; ++r) {
    const std::string why = unusable(env_ids[r], states + r * stride, stride);
    if (!why.empty()) {
      throw std::invalid_argument("init_state: row " + std::to_string(r) + " (for env " +
                                  std::to_string(env_ids[r]) + ") " + why);
    }
  }
  parallel_for(rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      restore_one(env_ids[r], states + r * stride);
      write_context(env_ids[r], states + r * stride);
    }
  });
}

void BatchEngine::add_layout(const ContextLayout& layout) {
  layouts_.push_back(layout);
  context_dim_ = std::max(context_dim_, layout.length());
}

void BatchEngine::check_env_ids(const int64_t* env_ids, int64_t count, const char* what) const {
  std::vector<int> seen(static_cast<size_t>(size_), 0);
  for (int64_t r = 0; r < count; ++r) {
    const int64_t env = env_ids[r];
    if (env < 0 || env >= size_) {
      throw std::invalid_argument(std::string(what) + ": row " + std::to_string(r) + " targets env " +
                                  std::to_string(env) + ", outside the batch");
    }
    if (seen[static_cast<size_t>(env)]++) {
      throw std::invalid_argument(std::string(what) + ": env " + std::to_string(env) + " is given twice");
    }
  }
}

void BatchEngine::fail_one(int64_t i) {
  write_outcome(i, false, false, true);
  out_.sim_error[i] = true;
}

void BatchEngine::write_outcome(int64_t i, bool success, bool terminate_on_success, bool out_of_time) {
  out_.success[i] = success;
  out_.reward[i] = success ? 1.0 : 0.0;
  out_.terminated[i] = success && terminate_on_success;
  out_.truncated[i] = out_of_time;
  out_.sim_error[i] = false;
}

void BatchEngine::clear_outcome(int64_t i) { write_outcome(i, false, false, false); }

void BatchEngine::write_context(int64_t i, const double* row) {
  double* ctx = out_.context + i * context_dim_;
  std::fill(ctx, ctx + context_dim_, 0.0);
  std::copy(row, row + layout(i).length(), ctx);
}

}  // namespace ript::sim
