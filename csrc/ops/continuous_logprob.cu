#include "common/cuda_check.h"
#include "ops/continuous_logprob.h"

namespace ript {
namespace {

// One thread per (b, t) row: D (action dims) is small, rows are many.
constexpr int kThreads = 256;

template <typename D, typename T>
__global__ void continuous_kernel(ContinuousIn<T> in, Strided2<acc_t<T>> logp, Strided3<T> grad_mean,
                                  Strided3<T> grad_log_scale) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (r >= in.rows()) return;
  const int64_t b = r / in.steps, t = r % in.steps;
  logp(b, t) = in.template row<D>(b, t, grad_mean, grad_log_scale);
}

struct CudaContinuous {
  cudaStream_t stream;

  template <typename D, typename T>
  void run(D, const ContinuousIn<T>& in, const Strided2<acc_t<T>>& logp, const Strided3<T>& grad_mean,
           const Strided3<T>& grad_log_scale) const {
    if (in.rows() == 0) return;
    continuous_kernel<D, T>
        <<<blocks_for(in.rows(), kThreads), kThreads, 0, stream>>>(in, logp, grad_mean, grad_log_scale);
    check_launch("continuous_kernel");
  }
};

}  // namespace

void continuous_logprob_cuda(Density density, const TensorRef& mean, const TensorRef& log_scale,
                             const TensorRef& actions, const std::optional<TensorRef>& mask, const TensorRef& logp,
                             const std::optional<TensorRef>& grad_mean, const std::optional<TensorRef>& grad_log_scale,
                             int device, uintptr_t stream) {
  continuous_logprob_impl(density, mean, log_scale, actions, mask, logp, grad_mean, grad_log_scale,
                          CudaContinuous{use_device(device, stream)});
}

}  // namespace ript
