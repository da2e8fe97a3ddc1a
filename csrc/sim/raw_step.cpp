#include "sim/raw_step.h"

#include <mujoco/mujoco.h>

#include <stdexcept>
#include <string>

#include "common/thread_pool.h"
#include "sim/guarded.h"

namespace ript::sim {

std::vector<bool> step_raw(const std::vector<uintptr_t>& models, const std::vector<uintptr_t>& datas, int32_t nstep) {
  if (models.size() != datas.size()) throw std::invalid_argument("step_raw: models and datas differ in length");
  if (nstep < 0) throw std::invalid_argument("step_raw: nstep must be >= 0");
  for (size_t i = 0; i < models.size(); ++i) {
    if (models[i] == 0 || datas[i] == 0) throw std::invalid_argument("step_raw: null address at env " + std::to_string(i));
  }
  std::vector<char> ok(models.size(), 1);
  parallel_for(static_cast<int64_t>(models.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      ok[i] = step_guarded(reinterpret_cast<const mjModel*>(models[i]), reinterpret_cast<mjData*>(datas[i]), nstep);
    }
  });
  return std::vector<bool>(ok.begin(), ok.end());
}

}  // namespace ript::sim
