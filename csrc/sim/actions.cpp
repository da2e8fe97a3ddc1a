#include "sim/actions.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace ript::sim {

void require_finite_actions(const void* actions, bool f32, const bool* active, int64_t n, int width) {
  for (int64_t i = 0; i < n; ++i) {
    if (!active[i]) continue;
    for (int k = 0; k < width; ++k) {
      if (!std::isfinite(action_value(actions, f32, i, width, k))) {
        throw std::invalid_argument("actions: non-finite value at env " + std::to_string(i) + ", component " +
                                    std::to_string(k));
      }
    }
  }
}

}  // namespace ript::sim
