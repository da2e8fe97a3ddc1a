#include "common/cuda_check.h"
#include "ops/categorical_ppo_loss.h"
#include "ops/categorical_rows.cuh"

namespace ript {
namespace {

constexpr int kThreads = 256;

template <typename A>
__global__ void sequence_sums_kernel(Strided2<const A> mask, int64_t batch, int64_t steps, const A* token_logp,
                                     A* seq_logp, A* seq_weight) {
  const int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (b < batch) sequence_sum_one(mask, steps, token_logp, b, seq_logp, seq_weight);
}

struct CudaPpoBackend {
  CudaRows rows;

  template <typename A>
  DeviceBuffer<A> scratch(int64_t n) const {
    return DeviceBuffer<A>(n, rows.stream);
  }
  template <typename Logp>
  void reduce(const PpoIn<Logp>& in, const PpoOut<Logp>& out) const {
    ppo_reduce_cuda(in, out, reinterpret_cast<uintptr_t>(rows.stream));
  }
  template <typename A>
  void mask_total(const Strided2<const A>& mask, int64_t batch, int64_t steps, A* total) const {
    mask_total_cuda(mask, batch, steps, total, reinterpret_cast<uintptr_t>(rows.stream));
  }
  template <typename A>
  void sequence_sums(const Strided2<const A>& mask, int64_t batch, int64_t steps, const A* token_logp, A* seq_logp,
                     A* seq_weight) const {
    if (batch == 0) return;
    sequence_sums_kernel<A>
        <<<blocks_for(batch, kThreads), kThreads, 0, rows.stream>>>(mask, batch, steps, token_logp, seq_logp, seq_weight);
    check_launch("sequence_sums_kernel");
  }
};

}  // namespace

void categorical_ppo_loss_cuda(const TensorRef& logits, const TensorRef& tokens, const std::optional<TensorRef>& mask,
                               const TensorRef& logp_old, const TensorRef& advantages, double clip_eps,
                               double clip_eps_high, double temperature, const TensorRef& loss,
                               const TensorRef& stats, const std::optional<TensorRef>& grad_logits, int device,
                               uintptr_t stream) {
  categorical_ppo_loss_impl(logits, tokens, mask, logp_old, advantages, clip_eps, clip_eps_high, temperature, loss,
                            stats, grad_logits, CudaPpoBackend{CudaRows{use_device(device, stream)}});
}

}  // namespace ript
