#include "ops/ppo_clip_loss.h"

#include <algorithm>

#include "common/ordered_reduce.h"

namespace ript {

namespace {

// The deterministic reductions run over fixed blocks of whole rows, about kBlockElements elements each: one
// block (serial) for typical PPO batches, where waking the pool would cost more than the arithmetic.
constexpr int64_t kBlockElements = 32768;

int64_t rows_per_block(int64_t steps) { return std::max<int64_t>(1, kBlockElements / std::max<int64_t>(steps, 1)); }

}  // namespace

template <typename A>
A mask_total_cpu(const Strided2<const A>& mask, int64_t batch, int64_t steps) {
  if (!mask) return static_cast<A>(batch * steps);
  return ordered_sum<A>(batch, rows_per_block(steps), [&](int64_t begin, int64_t end) {
    A sum = 0;
    for (int64_t b = begin; b < end; ++b) {
      for (int64_t t = 0; t < steps; ++t) sum += mask(b, t);
    }
    return sum;
  });
}

template float mask_total_cpu<float>(const Strided2<const float>&, int64_t, int64_t);
template double mask_total_cpu<double>(const Strided2<const double>&, int64_t, int64_t);

template <typename Logp>
void ppo_reduce_cpu(const PpoIn<Logp>& in, const PpoOut<Logp>& out) {
  using A = acc_t<Logp>;
  const A total_weight = mask_total_cpu(in.mask, in.batch, in.steps);
  const PpoSums<A> sums = ordered_sum<PpoSums<A>>(in.batch, rows_per_block(in.steps), [&](int64_t begin, int64_t end) {
    PpoSums<A> acc;
    for (int64_t b = begin; b < end; ++b) {
      for (int64_t t = 0; t < in.steps; ++t) ppo_element(in, out, total_weight, b, t, acc);
    }
    return acc;
  });
  sums.finish(out.loss, out.stats);
}

template void ppo_reduce_cpu<float>(const PpoIn<float>&, const PpoOut<float>&);
template void ppo_reduce_cpu<double>(const PpoIn<double>&, const PpoOut<double>&);
template void ppo_reduce_cpu<Half>(const PpoIn<Half>&, const PpoOut<Half>&);
template void ppo_reduce_cpu<BFloat16>(const PpoIn<BFloat16>&, const PpoOut<BFloat16>&);

void ppo_clip_loss_cpu(const TensorRef& logp_new, const TensorRef& logp_old, const TensorRef& advantages,
                       const std::optional<TensorRef>& mask, double clip_eps, double clip_eps_high,
                       const TensorRef& loss, const TensorRef& stats, const std::optional<TensorRef>& grad) {
  ppo_clip_loss_impl(logp_new, logp_old, advantages, mask, clip_eps, clip_eps_high, loss, stats, grad,
                     [](const auto& in, const auto& out) { ppo_reduce_cpu(in, out); });
}

}  // namespace ript
