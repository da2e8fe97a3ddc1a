#include "ops/continuous_logprob.h"

#include <algorithm>

#include "common/thread_pool.h"

namespace ript {
namespace {

// Rows go parallel only past ~32k elements of work: below that, waking the pool costs more than it saves.
struct CpuContinuous {
  template <typename D, typename T>
  void run(D, const ContinuousIn<T>& in, const Strided2<acc_t<T>>& logp, const Strided3<T>& grad_mean,
           const Strided3<T>& grad_log_scale) const {
    const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(in.dims, 1));
    parallel_for(in.rows(), grain, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b = r / in.steps, t = r % in.steps;
        logp(b, t) = in.template row<D>(b, t, grad_mean, grad_log_scale);
      }
    });
  }
};

}  // namespace

void continuous_logprob_cpu(Density density, const TensorRef& mean, const TensorRef& log_scale,
                            const TensorRef& actions, const std::optional<TensorRef>& mask, const TensorRef& logp,
                            const std::optional<TensorRef>& grad_mean, const std::optional<TensorRef>& grad_log_scale) {
  continuous_logprob_impl(density, mean, log_scale, actions, mask, logp, grad_mean, grad_log_scale, CpuContinuous{});
}

}  // namespace ript
