#include "common/block_reduce.cuh"
#include "common/cuda_check.h"
#include "ops/ppo_clip_loss.h"

namespace ript {
namespace {

// PPO batches are small ((B,) or (B, T) with B T ~ 1e3-1e5): one block, a grid-stride loop and a fixed
// reduction tree keep the result deterministic.
constexpr int kThreads = 512;

template <typename A>
__device__ A block_mask_total(const Strided2<const A>& mask, int64_t batch, int64_t steps) {
  if (!mask) return static_cast<A>(batch * steps);
  A sum = 0;
  for (int64_t i = threadIdx.x; i < batch * steps; i += kThreads) sum += mask(i / steps, i % steps);
  return block_reduce<kThreads>(sum, Plus{});
}

template <typename Logp>
__global__ void __launch_bounds__(kThreads) ppo_reduce_kernel(PpoIn<Logp> in, PpoOut<Logp> out) {
  using A = acc_t<Logp>;
  const A total = block_mask_total(in.mask, in.batch, in.steps);
  PpoSums<A> acc;
  for (int64_t i = threadIdx.x; i < in.size(); i += kThreads) {
    ppo_element(in, out, total, i / in.steps, i % in.steps, acc);
  }
  const PpoSums<A> sums = block_reduce<kThreads>(acc, Plus{});
  if (threadIdx.x == 0) sums.finish(out.loss, out.stats);
}

template <typename A>
__global__ void __launch_bounds__(kThreads) mask_total_kernel(Strided2<const A> mask, int64_t batch, int64_t steps,
                                                              A* total) {
  const A sum = block_mask_total(mask, batch, steps);
  if (threadIdx.x == 0) *total = sum;
}

}  // namespace

template <typename Logp>
void ppo_reduce_cuda(const PpoIn<Logp>& in, const PpoOut<Logp>& out, uintptr_t stream) {
  ppo_reduce_kernel<Logp><<<1, kThreads, 0, reinterpret_cast<cudaStream_t>(stream)>>>(in, out);
  check_launch("ppo_reduce_kernel");
}

template void ppo_reduce_cuda<float>(const PpoIn<float>&, const PpoOut<float>&, uintptr_t);
template void ppo_reduce_cuda<double>(const PpoIn<double>&, const PpoOut<double>&, uintptr_t);
template void ppo_reduce_cuda<Half>(const PpoIn<Half>&, const PpoOut<Half>&, uintptr_t);
template void ppo_reduce_cuda<BFloat16>(const PpoIn<BFloat16>&, const PpoOut<BFloat16>&, uintptr_t);

template <typename A>
void mask_total_cuda(const Strided2<const A>& mask, int64_t batch, int64_t steps, A* total, uintptr_t stream) {
  mask_total_kernel<A><<<1, kThreads, 0, reinterpret_cast<cudaStream_t>(stream)>>>(mask, batch, steps, total);
  check_launch("mask_total_kernel");
}

template void mask_total_cuda<float>(const Strided2<const float>&, int64_t, int64_t, float*, uintptr_t);
template void mask_total_cuda<double>(const Strided2<const double>&, int64_t, int64_t, double*, uintptr_t);

void ppo_clip_loss_cuda(const TensorRef& logp_new, const TensorRef& logp_old, const TensorRef& advantages,
                        const std::optional<TensorRef>& mask, double clip_eps, double clip_eps_high,
                        const TensorRef& loss, const TensorRef& stats, const std::optional<TensorRef>& grad, int device,
                        uintptr_t stream) {
  use_device(device, stream);
  ppo_clip_loss_impl(logp_new, logp_old, advantages, mask, clip_eps, clip_eps_high, loss, stats, grad,
                     [&](const auto& in, const auto& out) { ppo_reduce_cuda(in, out, stream); });
}

}  // namespace ript
