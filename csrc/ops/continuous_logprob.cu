#include "common/cuda_check.h"
#include "ops/continuous_logprob.h"

namespace ript {
namespace {

// One thread per (b, t) row: D (action dims) is small, rows are many.
constexpr int kThreads = 256;

template <typename D, typename T>
__global__ void forward_kernel(ContinuousIn<T> in, Strided2<acc_t<T>> logp) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (r < in.rows()) logp(r / in.steps, r % in.steps) = in.template row_logp<D>(r / in.steps, r % in.steps);
}

template <typename D, typename T>
__global__ void backward_kernel(ContinuousIn<T> in, Strided2<const acc_t<T>> grad_logp, Strided3<T> grad_mean,
                                Strided3<T> grad_log_scale) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (r >= in.rows()) return;
  const int64_t b = r / in.steps, t = r % in.steps;
  in.template row_grad<D>(b, t, grad_logp(b, t), grad_mean, grad_log_scale);
}

struct CudaContinuous {
  cudaStream_t stream;

  template <typename D, typename T>
  void forward(D, const ContinuousIn<T>& in, const Strided2<acc_t<T>>& logp) const {
    if (in.rows() == 0) return;
    forward_kernel<D, T><<<blocks_for(in.rows(), kThreads), kThreads, 0, stream>>>(in, logp);
    check_launch("continuous forward_kernel");
  }

  template <typename D, typename T>
  void backward(D, const ContinuousIn<T>& in, const Strided2<const acc_t<T>>& grad_logp, const Strided3<T>& grad_mean,
                const Strided3<T>& grad_log_scale) const {
    if (in.rows() == 0) return;
    backward_kernel<D, T>
        <<<blocks_for(in.rows(), kThreads), kThreads, 0, stream>>>(in, grad_logp, grad_mean, grad_log_scale);
    check_launch("continuous backward_kernel");
  }
};

}  // namespace

void continuous_logprob_cuda(Density density, const TensorRef& mean, const TensorRef& log_scale,
                             const TensorRef& actions, const std::optional<TensorRef>& mask, const TensorRef& logp,
                             int device, uintptr_t stream) {
  continuous_logprob_impl(density, mean, log_scale, actions, mask, logp, CudaContinuous{use_device(device, stream)});
}

void continuous_logprob_backward_cuda(Density density, const TensorRef& grad_logp, const TensorRef& mean,
                                      const TensorRef& log_scale, const TensorRef& actions,
                                      const std::optional<TensorRef>& mask, const TensorRef& grad_mean,
                                      const TensorRef& grad_log_scale, int device, uintptr_t stream) {
  continuous_logprob_backward_impl(density, grad_logp, mean, log_scale, actions, mask, grad_mean, grad_log_scale,
                                   CudaContinuous{use_device(device, stream)});
}

}  // namespace ript
