#include "ops/continuous_logprob.h"

#include <algorithm>

#include "common/thread_pool.h"

namespace ript {
namespace {

// Rows go parallel only past ~32k elements of work: below that, waking the pool costs more than it saves.
struct CpuContinuous {
  static int64_t grain(int64_t dims) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(dims, 1)); }

  template <typename D, typename T>
  void forward(D, const ContinuousIn<T>& in, const Strided2<acc_t<T>>& logp) const {
    parallel_for(in.rows(), grain(in.dims), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b = r / in.steps, t = r % in.steps;
        logp(b, t) = in.template row_logp<D>(b, t);
      }
    });
  }

  template <typename D, typename T>
  void backward(D, const ContinuousIn<T>& in, const Strided2<const acc_t<T>>& grad_logp, const Strided3<T>& grad_mean,
                const Strided3<T>& grad_log_scale) const {
    parallel_for(in.rows(), grain(in.dims), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b = r / in.steps, t = r % in.steps;
        in.template row_grad<D>(b, t, grad_logp(b, t), grad_mean, grad_log_scale);
      }
    });
  }
};

}  // namespace

void continuous_logprob_cpu(Density density, const TensorRef& mean, const TensorRef& log_scale,
                            const TensorRef& actions, const std::optional<TensorRef>& mask, const TensorRef& logp) {
  continuous_logprob_impl(density, mean, log_scale, actions, mask, logp, CpuContinuous{});
}

void continuous_logprob_backward_cpu(Density density, const TensorRef& grad_logp, const TensorRef& mean,
                                     const TensorRef& log_scale, const TensorRef& actions,
                                     const std::optional<TensorRef>& mask, const TensorRef& grad_mean,
                                     const TensorRef& grad_log_scale) {
  continuous_logprob_backward_impl(density, grad_logp, mean, log_scale, actions, mask, grad_mean, grad_log_scale,
                                   CpuContinuous{});
}

}  // namespace ript
