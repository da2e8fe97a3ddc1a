// Log-probabilities of sampled tokens under a categorical policy head (paper Sec. 4.3, Eq. 7), without ever
// materialising the (B, T, V) softmax.
//
// For a row of logits x (one position b, t) at temperature tau, with s = 1 / tau:
//   lse    = log sum_v exp(s x_v)                       (one online pass over the row)
//   logp   = s x_tok - lse
//   d logp / d x_v = s (1[v == tok] - exp(s x_v - lse))  (recomputed from the saved lse, never stored)
// A weight w (the mask) multiplies logp; rows with w == 0 are never read (their token may be padding).
//
// The row loop is shared by three callers, which differ only in where the gradient coefficient of a row
// comes from: none (forward), the upstream gradient (backward), or the PPO objective (the fused loss).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>

#include "common/dispatch.h"
#include "common/scalar.h"
#include "common/strided.h"
#include "common/tensor_ref.h"

namespace ript {

// Running (max, sum of exp(x - max)) of a stream of scaled logits; merges associatively.
template <typename A>
struct LseState {
  A max = -std::numeric_limits<A>::infinity();
  A sum = 0;
};

template <typename A>
RIPT_HD LseState<A> lse_merge(LseState<A> a, LseState<A> b) {
  if (b.max > a.max) {
    const LseState<A> t = a;
    a = b;
    b = t;
  }
  if (b.sum == 0) return a;  // also covers b.max == -inf, where exp(b.max - a.max) could be NaN
  a.sum += b.sum * std::exp(b.max - a.max);
  return a;
}

// One element of the online update (a CUDA thread's loop, and the CPU float64 path). A -inf contributes
// nothing (skipped: exp(-inf - -inf) would be NaN while the max is still -inf); a NaN propagates into the sum.
template <typename A>
RIPT_HD void lse_push(LseState<A>& st, A x) {
  if (x > st.max) {
    st.sum = st.sum * std::exp(st.max - x) + A(1);  // exp(-inf) = 0 for the first finite element
    st.max = x;
  } else if (x != -std::numeric_limits<A>::infinity()) {
    st.sum += std::exp(x - st.max);
  }
}

template <typename A>
RIPT_HD A lse_value(LseState<A> st) {
  return st.max + std::log(st.sum);  // all -inf: -inf + log(0) = -inf
}

// The gradient of w * logp with respect to x_v, times the coefficient c of the row (upstream gradient times
// the weight); `scaled_x` is s x_v.
template <typename A>
RIPT_HD A logprob_grad_one(A scaled_x, A lse, bool is_token, A c_times_s) {
  return c_times_s * ((is_token ? A(1) : A(0)) - std::exp(scaled_x - lse));
}

// The inputs shared by every categorical kernel: logits (B, T, V) with a unit vocab stride, tokens (B, T) of
// either int width, an optional weight mask (B, T) in the accumulation type, and 1 / temperature.
template <typename T>
struct CategoricalIn {
  using A = acc_t<T>;
  const T* logits = nullptr;
  int64_t batch = 0, steps = 0, vocab = 0, ls0 = 0, ls1 = 0;
  IndexView2 tokens;
  Strided2<const A> mask;
  A inv_temp = 1;

  RIPT_HD int64_t rows() const { return batch * steps; }
  RIPT_HD const T* row(int64_t b, int64_t t) const { return logits + b * ls0 + t * ls1; }
  RIPT_HD A weight(int64_t b, int64_t t) const { return mask ? mask(b, t) : A(1); }
  RIPT_HD bool token_ok(int64_t tok) const { return tok >= 0 && tok < vocab; }
};

// What a row pass writes (each optional): the per-token log-probs, times the weight unless `weighted` is false,
// and the row lse (B, T), or reads: a saved lse instead of recomputing it; and the logits gradient (B, T, V),
// unit vocab stride.
template <typename T>
struct CategoricalOut {
  using A = acc_t<T>;
  Strided2<A> logp;
  bool weighted = true;
  Strided2<A> lse;
  Strided2<const A> saved_lse;
  T* grad = nullptr;
  int64_t gs0 = 0, gs1 = 0;

  RIPT_HD T* grad_row(int64_t b, int64_t t) const { return grad + b * gs0 + t * gs1; }
};

// Row coefficient for the backward: the upstream gradient of the weighted log-prob (B, T).
template <typename A>
struct UpstreamCoef {
  Strided2<const A> grad;
  RIPT_HD A operator()(int64_t b, int64_t t, A /*logp*/, A weight) const { return grad(b, t) * weight; }
};

// The error for a token outside [0, V) at an unmasked position (std::out_of_range is Python's IndexError).
inline std::out_of_range bad_token_error(int64_t b, int64_t t, int64_t token, int64_t vocab) {
  return std::out_of_range("tokens: value " + std::to_string(token) + " at (b=" + std::to_string(b) + ", t=" +
                           std::to_string(t) + ") is outside [0, V=" + std::to_string(vocab) + ")");
}

// Builds the input views from the buffers, checking ranks, sizes, dtypes and the unit vocab stride.
template <typename T>
CategoricalIn<T> categorical_in(const TensorRef& logits, const TensorRef& tokens, const std::optional<TensorRef>& mask,
                                double temperature) {
  check_ref(logits, "logits", 3);
  expect_dtype<T>(logits, "logits");
  if (!(temperature > 0) || !std::isfinite(temperature)) {
    throw std::invalid_argument("temperature: must be finite and > 0");
  }
  CategoricalIn<T> in;
  in.logits = logits.data<T>();
  in.batch = logits.size(0);
  in.steps = logits.size(1);
  in.vocab = logits.size(2);
  if (in.vocab < 1) throw std::invalid_argument("logits: the vocabulary size V must be >= 1");
  if (logits.stride(2) != 1 && in.vocab > 1) throw std::invalid_argument("logits: the vocab dimension must have stride 1");
  in.ls0 = logits.stride(0);
  in.ls1 = logits.stride(1);
  in.tokens = index2(tokens, "tokens", in.batch, in.steps);
  in.mask = optional2<const acc_t<T>>(mask, "mask", in.batch, in.steps);
  in.inv_temp = static_cast<acc_t<T>>(1.0 / temperature);
  return in;
}

// The (B, T, V) gradient buffer: same sizes as the logits, same dtype, unit vocab stride.
template <typename T>
void set_grad_out(CategoricalOut<T>& out, const CategoricalIn<T>& in, const TensorRef& grad) {
  expect_sizes(grad, "grad_logits", {in.batch, in.steps, in.vocab});
  expect_dtype<T>(grad, "grad_logits");
  if (grad.stride(2) != 1 && in.vocab > 1) throw std::invalid_argument("grad_logits: the vocab dimension must have stride 1");
  out.grad = grad.data<T>();
  out.gs0 = grad.stride(0);
  out.gs1 = grad.stride(1);
}

// The argument plumbing both backends share; `rows(in, out, coef)` is the backend's row pass.
template <typename Rows>
void categorical_logprob_impl(const TensorRef& logits, const TensorRef& tokens, const std::optional<TensorRef>& mask,
                              double temperature, const TensorRef& logp, const TensorRef& lse, const Rows& rows) {
  dispatch_floating(logits.dtype, "logits", [&](auto tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    using A = acc_t<T>;
    const CategoricalIn<T> in = categorical_in<T>(logits, tokens, mask, temperature);
    CategoricalOut<T> out;
    out.logp = strided2<A>(logp, "logp", in.batch, in.steps);
    out.lse = strided2<A>(lse, "lse", in.batch, in.steps);
    rows(in, out, UpstreamCoef<A>{});
  });
}

template <typename Rows>
void categorical_logprob_backward_impl(const TensorRef& grad_logp, const TensorRef& logits, const TensorRef& tokens,
                                       const std::optional<TensorRef>& mask, const TensorRef& lse, double temperature,
                                       const TensorRef& grad_logits, const Rows& rows) {
  dispatch_floating(logits.dtype, "logits", [&](auto tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    using A = acc_t<T>;
    const CategoricalIn<T> in = categorical_in<T>(logits, tokens, mask, temperature);
    CategoricalOut<T> out;
    out.saved_lse = strided2<const A>(lse, "lse", in.batch, in.steps);
    set_grad_out(out, in, grad_logits);
    rows(in, out, UpstreamCoef<A>{strided2<const A>(grad_logp, "grad_logp", in.batch, in.steps)});
  });
}

// logits (B, T, V); tokens (B, T) int64/int32; mask (B, T) in the accumulation dtype (float32, or float64 for
// float64 logits); outputs logp = mask * log-prob and the row lse, (B, T) in the accumulation dtype.
void categorical_logprob_cpu(const TensorRef& logits, const TensorRef& tokens, const std::optional<TensorRef>& mask,
                             double temperature, const TensorRef& logp, const TensorRef& lse);
// grad_logp (B, T) in the accumulation dtype: the upstream gradient of logp; grad_logits (B, T, V) output.
void categorical_logprob_backward_cpu(const TensorRef& grad_logp, const TensorRef& logits, const TensorRef& tokens,
                                      const std::optional<TensorRef>& mask, const TensorRef& lse, double temperature,
                                      const TensorRef& grad_logits);

#ifdef RIPT_WITH_CUDA
void categorical_logprob_cuda(const TensorRef& logits, const TensorRef& tokens, const std::optional<TensorRef>& mask,
                              double temperature, const TensorRef& logp, const TensorRef& lse, int device,
                              uintptr_t stream);
void categorical_logprob_backward_cuda(const TensorRef& grad_logp, const TensorRef& logits, const TensorRef& tokens,
                                       const std::optional<TensorRef>& mask, const TensorRef& lse, double temperature,
                                       const TensorRef& grad_logits, int device, uintptr_t stream);
#endif

}  // namespace ript
