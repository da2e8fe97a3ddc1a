// The whole token path of RIPT's PPO update fused (log-prob, clipped loss, logits gradient), in the manner of
// Liger-Kernel's fused losses: the logits gradient is computed during the forward, row by row, and the
// backward only scales it. Nothing (B, T, V) is allocated besides that gradient.
//
// Per-token ratios (logp_old (B, T)): the loss is the mask-weighted mean of per-token terms, so each row's
// gradient coefficient depends on that row alone (and on the mask total, summed first): one pass over the
// logits computes lse, log-prob, coefficient and gradient row while the row is in cache.
// Sequence ratios (logp_old (B,), paper Eq. 6 with Eq. 7): a row's coefficient depends on its whole sequence,
// so a first pass computes the per-token log-probs and saves the row lse, the (B,) reduction gives each
// rollout's coefficient, and a second pass writes the gradient rows from the saved lse. A rollout with no
// valid token is left out of the mean over rollouts.
#pragma once

#include <cstdint>
#include <optional>

#include "ops/categorical_logprob.h"
#include "ops/ppo_clip_loss.h"

namespace ript {

// Row coefficient of the per-token loss: w * d loss_t / d logp_t / (sum of weights).
template <typename A>
struct PpoTokenCoef {
  Strided2<const A> logp_old;
  Strided1<const A> adv;
  A low = 0, high = 0;
  const A* total_weight = nullptr;  // host or device memory, matching the backend

  RIPT_HD A operator()(int64_t b, int64_t t, A logp, A w) const {
    return w * ppo_term<A>(logp, logp_old(b, t), adv[b], low, high).grad / *total_weight;
  }
};

// Both levels on one backend. `be` provides: rows(in, out, coef); reduce(ppo_in, ppo_out); scratch<A>(n) (an
// owner with .data()); mask_total(mask, B, T, dst); sequence_sums(mask, B, T, token_logp, seq_logp, seq_weight).
template <typename Backend>
void categorical_ppo_loss_impl(const TensorRef& logits, const TensorRef& tokens, const std::optional<TensorRef>& mask,
                               const TensorRef& logp_old, const TensorRef& advantages, double clip_eps,
                               double clip_eps_high, double temperature, const TensorRef& loss, const TensorRef& stats,
                               const std::optional<TensorRef>& grad_logits, const Backend& be) {
  check_clip(clip_eps, clip_eps_high);
  dispatch_floating(logits.dtype, "logits", [&](auto tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    using A = acc_t<T>;
    const CategoricalIn<T> in = categorical_in<T>(logits, tokens, mask, temperature);
    const int64_t batch = in.batch, steps = in.steps;
    PpoIn<A> ppo;
    ppo.adv = strided1<const A>(advantages, "advantages", batch);
    ppo.low = static_cast<A>(1.0 - clip_eps);
    ppo.high = static_cast<A>(1.0 + clip_eps_high);
    PpoOut<A> result = ppo_scalar_out<A>(loss, stats);
    CategoricalOut<T> rows_out;
    if (grad_logits) set_grad_out(rows_out, in, *grad_logits);

    // scratch: token log-probs (B, T), then per level: total weight | lse (B, T), seq logp, weight, grad (B,)
    auto scratch = be.template scratch<A>(2 * batch * steps + 3 * batch + 1);
    A* token_logp = scratch.data();
    rows_out.logp = Strided2<A>{token_logp, steps, 1};

    if (logp_old.dim() == 2) {
      ppo.logp_old = strided2<const A>(logp_old, "logp_old", batch, steps);
      A* total = token_logp + batch * steps;
      be.mask_total(in.mask, batch, steps, total);
      rows_out.weighted = false;
      be.rows(in, rows_out, PpoTokenCoef<A>{ppo.logp_old, ppo.adv, ppo.low, ppo.high, total});
      ppo.logp_new = Strided2<const A>{token_logp, steps, 1};
      ppo.mask = in.mask;
      ppo.batch = batch;
      ppo.steps = steps;
      be.reduce(ppo, result);
      return;
    }

    const Strided1<const A> old = strided1<const A>(logp_old, "logp_old", batch);
    A* lse = token_logp + batch * steps;
    A* seq_logp = lse + batch * steps;
    A* seq_weight = seq_logp + batch;
    A* seq_grad = seq_weight + batch;
    CategoricalOut<T> forward;
    forward.logp = rows_out.logp;
    forward.lse = Strided2<A>{lse, steps, 1};
    be.rows(in, forward, UpstreamCoef<A>{});
    be.sequence_sums(in.mask, batch, steps, token_logp, seq_logp, seq_weight);
    ppo.logp_new = Strided2<const A>{seq_logp, 1, 0};
    ppo.logp_old = Strided2<const A>{old.p, old.s0, 0};
    ppo.mask = Strided2<const A>{seq_weight, 1, 0};
    ppo.batch = batch;
    ppo.steps = 1;
    if (grad_logits) result.grad = Strided2<A>{seq_grad, 1, 0};
    be.reduce(ppo, result);
    if (!grad_logits) return;
    rows_out.logp = Strided2<A>{};
    rows_out.saved_lse = Strided2<const A>{lse, steps, 1};
    be.rows(in, rows_out, UpstreamCoef<A>{Strided2<const A>{seq_grad, 1, 0}});
  });
}

// One sequence's log-prob (the sum of its weighted token log-probs) and weight (1 if any token is valid).
template <typename A>
RIPT_HD void sequence_sum_one(const Strided2<const A>& mask, int64_t steps, const A* token_logp, int64_t b,
                              A* seq_logp, A* seq_weight) {
  A sum = 0;
  bool any = !mask;
  for (int64_t t = 0; t < steps; ++t) {
    sum += token_logp[b * steps + t];
    any = any || (mask(b, t) != 0);
  }
  seq_logp[b] = sum;
  seq_weight[b] = any ? A(1) : A(0);
}

// logits (B, T, V), tokens (B, T), mask (B, T) in the accumulation dtype (optional); logp_old (B,) or (B, T) and
// advantages (B,) in the accumulation dtype; outputs loss (0-dim) and stats (3,) in the accumulation dtype and,
// when given, grad_logits (B, T, V) = d loss / d logits.
void categorical_ppo_loss_cpu(const TensorRef& logits, const TensorRef& tokens, const std::optional<TensorRef>& mask,
                              const TensorRef& logp_old, const TensorRef& advantages, double clip_eps,
                              double clip_eps_high, double temperature, const TensorRef& loss, const TensorRef& stats,
                              const std::optional<TensorRef>& grad_logits);

#ifdef RIPT_WITH_CUDA
void categorical_ppo_loss_cuda(const TensorRef& logits, const TensorRef& tokens, const std::optional<TensorRef>& mask,
                               const TensorRef& logp_old, const TensorRef& advantages, double clip_eps,
                               double clip_eps_high, double temperature, const TensorRef& loss,
                               const TensorRef& stats, const std::optional<TensorRef>& grad_logits, int device,
                               uintptr_t stream);
#endif

}  // namespace ript
