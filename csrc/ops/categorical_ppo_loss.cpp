#include "ops/categorical_ppo_loss.h"

#include <vector>

#include "common/thread_pool.h"
#include "ops/categorical_rows_cpu.h"

namespace ript {
namespace {

struct CpuPpoBackend {
  CpuRows rows;

  template <typename A>
  std::vector<A> scratch(int64_t n) const {
    return std::vector<A>(static_cast<size_t>(n));
  }
  template <typename Logp>
  void reduce(const PpoIn<Logp>& in, const PpoOut<Logp>& out) const {
    ppo_reduce_cpu(in, out);
  }
  template <typename A>
  void mask_total(const Strided2<const A>& mask, int64_t batch, int64_t steps, A* total) const {
    *total = mask_total_cpu(mask, batch, steps);
  }
  template <typename A>
  void sequence_sums(const Strided2<const A>& mask, int64_t batch, int64_t steps, const A* token_logp, A* seq_logp,
                     A* seq_weight) const {
    parallel_for(batch, 256, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) sequence_sum_one(mask, steps, token_logp, b, seq_logp, seq_weight);
    });
  }
};

}  // namespace

void categorical_ppo_loss_cpu(const TensorRef& logits, const TensorRef& tokens, const std::optional<TensorRef>& mask,
                              const TensorRef& logp_old, const TensorRef& advantages, double clip_eps,
                              double clip_eps_high, double temperature, const TensorRef& loss, const TensorRef& stats,
                              const std::optional<TensorRef>& grad_logits) {
  categorical_ppo_loss_impl(logits, tokens, mask, logp_old, advantages, clip_eps, clip_eps_high, temperature, loss,
                            stats, grad_logits, CpuPpoBackend{});
}

}  // namespace ript
