// The clipped PPO objective of RIPT (paper Eq. 6) over a batch of ratios, its gradient and its statistics.
//
// One term, for a log-ratio d = logp_new - logp_old and an advantage A:
//   r = exp(clamp(d, -kMaxLogRatio, kMaxLogRatio))       (the clamp keeps r and r A finite)
//   loss = -min(r A, clip(r, 1 - eps, 1 + eps_high) A)
//   d loss / d logp_new = -A r where the unclipped term is the minimum and d is inside the clamp, else 0
// The batch loss is the weighted mean sum_i w_i loss_i / sum_i w_i (0 when every weight is 0): the mean over
// rollouts for sequence ratios, the mean over valid tokens for per-token ratios. Elements with w == 0 are never
// read. Statistics, weighted the same way: the fraction of elements whose gradient the clip zeroes, the
// k3 estimator (r - 1) - log r of KL(old || new), and the mean ratio.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include "common/dispatch.h"
#include "common/scalar.h"
#include "common/strided.h"
#include "common/tensor_ref.h"

namespace ript {

constexpr double kMaxLogRatio = 20.0;

template <typename A>
struct PpoTerm {
  A loss, grad, ratio, kl;
  bool clipped;
};

template <typename A>
RIPT_HD PpoTerm<A> ppo_term(A logp_new, A logp_old, A adv, A low, A high) {
  const A d = logp_new - logp_old;
  const A bound = static_cast<A>(kMaxLogRatio);
  // Written with comparisons (not fmin/fmax) so that a NaN log-ratio stays NaN instead of becoming a bound.
  const bool clamped = d < -bound || d > bound;
  const A log_ratio = d < -bound ? -bound : (d > bound ? bound : d);
  const A r = std::exp(log_ratio);
  const A r_clip = r < low ? low : (r > high ? high : r);
  const A unclipped = r * adv, clipped = r_clip * adv;
  const bool clip_binds = clipped < unclipped;
  PpoTerm<A> term;
  term.loss = -(clip_binds ? clipped : unclipped);
  term.grad = (clip_binds || clamped) ? A(0) : -adv * r;
  term.ratio = r;
  term.kl = (r - A(1)) - log_ratio;
  term.clipped = clip_binds;
  return term;
}

// Weighted sums over a batch of terms (also the partial sums a reduction combines).
template <typename A>
struct PpoSums {
  A weight = 0, loss = 0, clipped = 0, kl = 0, ratio = 0;

  RIPT_HD void add(const PpoTerm<A>& term, A w) {
    weight += w;
    loss += w * term.loss;
    clipped += term.clipped ? w : A(0);
    kl += w * term.kl;
    ratio += w * term.ratio;
  }
  RIPT_HD PpoSums& operator+=(const PpoSums& o) {
    weight += o.weight;
    loss += o.loss;
    clipped += o.clipped;
    kl += o.kl;
    ratio += o.ratio;
    return *this;
  }
  // loss, then (clip fraction, approx KL, mean ratio); all 0 for an empty batch.
  RIPT_HD void finish(A* loss_out, A* stats_out) const {
    const A inv = weight > 0 ? A(1) / weight : A(0);
    *loss_out = loss * inv;
    stats_out[0] = clipped * inv;
    stats_out[1] = kl * inv;
    stats_out[2] = ratio * inv;
  }
};

// A batch of (B, T) log-ratios (T == 1 for sequence ratios) with per-rollout advantages (B,), broadcast over T.
// `Logp` is the element type of logp_new: the caller's dtype, or the accumulation type inside fused kernels.
template <typename Logp>
struct PpoIn {
  using A = acc_t<Logp>;
  Strided2<const Logp> logp_new;
  Strided2<const A> logp_old;
  Strided1<const A> adv;
  Strided2<const A> mask;
  int64_t batch = 0, steps = 0;
  A low = 0, high = 0;  // 1 - eps, 1 + eps_high

  RIPT_HD int64_t size() const { return batch * steps; }
  RIPT_HD A weight(int64_t b, int64_t t) const { return mask ? mask(b, t) : A(1); }
  RIPT_HD PpoTerm<A> term(int64_t b, int64_t t) const {
    return ppo_term<A>(load(&logp_new(b, t)), logp_old(b, t), adv[b], low, high);
  }
};

// Where a reduction writes: the loss (a scalar), the statistics (3,), and optionally d loss / d logp_new.
template <typename Logp>
struct PpoOut {
  acc_t<Logp>* loss = nullptr;
  acc_t<Logp>* stats = nullptr;
  Strided2<Logp> grad;
};

inline void check_clip(double clip_eps, double clip_eps_high) {
  if (!(clip_eps > 0) || !std::isfinite(clip_eps)) throw std::invalid_argument("clip_eps: must be finite and > 0");
  if (!(clip_eps_high > 0) || !std::isfinite(clip_eps_high)) {
    throw std::invalid_argument("clip_eps_high: must be finite and > 0");
  }
}

// A (B,) or (B, T) tensor shaped like `like`, viewed as (B, T) (T == 1 with a zero second stride for (B,)).
template <typename E>
Strided2<E> view_bt(const TensorRef& t, const char* name, const TensorRef& like) {
  if (t.sizes != like.sizes) throw std::invalid_argument(std::string(name) + ": shape differs from logp_new");
  check_ref(t, name, t.dim());
  expect_dtype<E>(t, name);
  return {t.data<std::remove_const_t<E>>(), t.stride(0), t.dim() == 2 ? t.stride(1) : 0};
}

// Views of the user-facing arguments: logp_new (B,) or (B, T); logp_old and mask shaped like it, in the
// accumulation dtype; advantages (B,) in the accumulation dtype.
template <typename Logp>
PpoIn<Logp> ppo_in(const TensorRef& logp_new, const TensorRef& logp_old, const TensorRef& advantages,
                   const std::optional<TensorRef>& mask, double clip_eps, double clip_eps_high) {
  using A = acc_t<Logp>;
  check_clip(clip_eps, clip_eps_high);
  if (logp_new.dim() != 1 && logp_new.dim() != 2) {
    throw std::invalid_argument("logp_new: expected (B,) or (B, T), got " + std::to_string(logp_new.dim()) + " dims");
  }
  PpoIn<Logp> in;
  in.batch = logp_new.size(0);
  in.steps = logp_new.dim() == 2 ? logp_new.size(1) : 1;
  in.logp_new = view_bt<const Logp>(logp_new, "logp_new", logp_new);
  in.logp_old = view_bt<const A>(logp_old, "logp_old", logp_new);
  if (mask) in.mask = view_bt<const A>(*mask, "mask", logp_new);
  in.adv = strided1<const A>(advantages, "advantages", in.batch);
  in.low = static_cast<A>(1.0 - clip_eps);
  in.high = static_cast<A>(1.0 + clip_eps_high);
  return in;
}

// The scalar outputs of a reduction: loss (0-dim) and stats (3,) contiguous, in the accumulation dtype.
template <typename Logp>
PpoOut<Logp> ppo_scalar_out(const TensorRef& loss, const TensorRef& stats) {
  using A = acc_t<Logp>;
  check_ref(loss, "loss", 0);
  expect_dtype<A>(loss, "loss");
  const Strided1<A> stats_view = strided1<A>(stats, "stats", 3);
  if (stats_view.s0 != 1) throw std::invalid_argument("stats: must be contiguous");
  PpoOut<Logp> out;
  out.loss = loss.data<A>();
  out.stats = stats_view.p;
  return out;
}

// ... plus the optional gradient, shaped like logp_new.
template <typename Logp>
PpoOut<Logp> ppo_out(const TensorRef& logp_new, const TensorRef& loss, const TensorRef& stats,
                     const std::optional<TensorRef>& grad) {
  PpoOut<Logp> out = ppo_scalar_out<Logp>(loss, stats);
  if (grad) out.grad = view_bt<Logp>(*grad, "grad", logp_new);
  return out;
}

// Element (b, t) of a reduction: skipped when its weight is 0, else added to `acc`, and its share of
// d loss / d logp_new written when a gradient is wanted.
template <typename Logp>
RIPT_HD void ppo_element(const PpoIn<Logp>& in, const PpoOut<Logp>& out, acc_t<Logp> total_weight, int64_t b,
                         int64_t t, PpoSums<acc_t<Logp>>& acc) {
  using A = acc_t<Logp>;
  const A w = in.weight(b, t);
  if (w == 0) {
    if (out.grad) store(&out.grad(b, t), A(0));
    return;
  }
  const PpoTerm<A> term = in.term(b, t);
  acc.add(term, w);
  if (out.grad) store(&out.grad(b, t), w * term.grad / total_weight);
}

// The argument plumbing both backends share; `reduce(in, out)` is the backend's reduction.
template <typename Reduce>
void ppo_clip_loss_impl(const TensorRef& logp_new, const TensorRef& logp_old, const TensorRef& advantages,
                        const std::optional<TensorRef>& mask, double clip_eps, double clip_eps_high,
                        const TensorRef& loss, const TensorRef& stats, const std::optional<TensorRef>& grad,
                        const Reduce& reduce) {
  dispatch_floating(logp_new.dtype, "logp_new", [&](auto tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    reduce(ppo_in<T>(logp_new, logp_old, advantages, mask, clip_eps, clip_eps_high),
           ppo_out<T>(logp_new, loss, stats, grad));
  });
}

// The reduction on each backend, instantiated for every logp_new dtype (ppo_clip_loss.cpp / .cu), and the sum
// of a (B, T) weight mask (B * T when absent) that normalises it, for float and double.
template <typename Logp>
void ppo_reduce_cpu(const PpoIn<Logp>& in, const PpoOut<Logp>& out);
template <typename A>
A mask_total_cpu(const Strided2<const A>& mask, int64_t batch, int64_t steps);

// logp_new (B,) or (B, T), any floating dtype; logp_old and mask shaped like it and advantages (B,), all three in
// the accumulation dtype; outputs loss (0-dim) and stats (3,) in the accumulation dtype, grad like logp_new.
void ppo_clip_loss_cpu(const TensorRef& logp_new, const TensorRef& logp_old, const TensorRef& advantages,
                       const std::optional<TensorRef>& mask, double clip_eps, double clip_eps_high,
                       const TensorRef& loss, const TensorRef& stats, const std::optional<TensorRef>& grad);

#ifdef RIPT_WITH_CUDA
// Single-block reductions on `stream` (deterministic); mask_total_cuda writes the total to device memory.
template <typename Logp>
void ppo_reduce_cuda(const PpoIn<Logp>& in, const PpoOut<Logp>& out, uintptr_t stream);
template <typename A>
void mask_total_cuda(const Strided2<const A>& mask, int64_t batch, int64_t steps, A* total, uintptr_t stream);

void ppo_clip_loss_cuda(const TensorRef& logp_new, const TensorRef& logp_old, const TensorRef& advantages,
                        const std::optional<TensorRef>& mask, double clip_eps, double clip_eps_high,
                        const TensorRef& loss, const TensorRef& stats, const std::optional<TensorRef>& grad, int device,
                        uintptr_t stream);
#endif

}  // namespace ript
