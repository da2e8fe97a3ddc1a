// A batch of action rows handed over as float32 or float64 (the dtype the policy produced; no conversion copy).
#pragma once

#include <cstdint>

namespace ript::sim {

inline double action_value(const void* actions, bool f32, int64_t env, int width, int k) {
  const int64_t at = env * width + k;
  return f32 ? static_cast<double>(static_cast<const float*>(actions)[at]) : static_cast<const double*>(actions)[at];
}

// Throws std::invalid_argument ("actions: non-finite value at env i, component k") if an active row is not finite.
void require_finite_actions(const void* actions, bool f32, const bool* active, int64_t n, int width);

}  // namespace ript::sim
