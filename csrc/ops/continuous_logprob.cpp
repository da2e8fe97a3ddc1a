#include "ops/continuous_logprob.h"

#include "common/thread_pool.h"

namespace ript {
namespace {
constexpr int64_t kGrainRows = 1024;
}  // namespace

void continuous_logprob_cpu(Density density, const TensorRef& mean, const TensorRef& log_scale,
                            const TensorRef& actions, const std::optional<TensorRef>& mask, const TensorRef& logp) {
  dispatch_density(density, mean.dtype, [&](auto tag, auto dens) {
    using T = std::remove_pointer_t<decltype(tag)>;
    using D = decltype(dens);
    const ContinuousIn<T> in = continuous_in<T>(mean, log_scale, actions, mask);
    const Strided2<acc_t<T>> out = strided2<acc_t<T>>(logp, "logp", in.batch, in.steps);
    parallel_for(in.rows(), kGrainRows, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b = r / in.steps, t = r % in.steps;
        out(b, t) = in.template row_logp<D>(b, t);
      }
    });
  });
}

void continuous_logprob_backward_cpu(Density density, const TensorRef& grad_logp, const TensorRef& mean,
                                     const TensorRef& log_scale, const TensorRef& actions,
                                     const std::optional<TensorRef>& mask, const TensorRef& grad_mean,
                                     const TensorRef& grad_log_scale) {
  dispatch_density(density, mean.dtype, [&](auto tag, auto dens) {
    using T = std::remove_pointer_t<decltype(tag)>;
    using D = decltype(dens);
    const ContinuousIn<T> in = continuous_in<T>(mean, log_scale, actions, mask);
    const Strided2<const acc_t<T>> g = strided2<const acc_t<T>>(grad_logp, "grad_logp", in.batch, in.steps);
    const Strided3<T> gm = strided3<T>(grad_mean, "grad_mean", in.batch, in.steps, in.dims);
    const Strided3<T> gs = strided3<T>(grad_log_scale, "grad_log_scale", in.batch, in.steps, in.dims);
    parallel_for(in.rows(), kGrainRows, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t b = r / in.steps, t = r % in.steps;
        in.template row_grad<D>(b, t, g(b, t), gm, gs);
      }
    });
  });
}

}  // namespace ript
