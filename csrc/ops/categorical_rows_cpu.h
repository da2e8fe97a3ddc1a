// The CPU row loop of the categorical ops: per (b, t) row one online log-sum-exp pass and, when a gradient is
// wanted, one gradient pass, both over chunks small enough to stay in L1 so that DRAM sees the row once.
// Rows run in parallel on the shared pool; the chunk primitives (categorical_rows_cpu.cpp) are vectorised.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "common/memory_hint.h"
#include "common/thread_pool.h"
#include "ops/categorical_logprob.h"

namespace ript {
namespace cpu_rows {

constexpr int64_t kChunk = 2048;

// On widened float values: the NaN-propagating max; sum_i exp((x_i - shift) * scale);
// out_i = -c exp(scale x_i - lse).
float chunk_max(const float* x, int64_t n);
float chunk_sum_exp(const float* x, int64_t n, float shift, float scale);
void chunk_neg_softmax(const float* x, int64_t n, float scale, float lse, float c, float* out);
void chunk_neg_softmax(const double* x, int64_t n, double scale, double lse, double c, double* out);

// A chunk of a row as accumulation-type values: the row itself for float/double, else widened into `buf`.
template <typename T>
const acc_t<T>* widen(const T* x, int64_t n, acc_t<T>* buf) {
  if constexpr (std::is_same_v<T, acc_t<T>>) {
    return x;
  } else {
    for (int64_t i = 0; i < n; ++i) buf[i] = load(x + i);
    return buf;
  }
}

// float32 (and half) rows: per chunk a vectorised max and sum of exp, chunks merged online. float64 rows, the
// precise path, run the per-element online update the CUDA threads run (so CPU tests cover it too).
template <typename T>
acc_t<T> row_logsumexp(const T* x, int64_t n, acc_t<T> scale) {
  using A = acc_t<T>;
  LseState<A> state;
  if constexpr (std::is_same_v<A, double>) {
    for (int64_t i = 0; i < n; ++i) lse_push(state, x[i] * scale);
  } else {
    A buf[kChunk];
    for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
      const int64_t len = std::min(kChunk, n - c0);
      const A* xs = widen(x + c0, len, buf);
      const A m = chunk_max(xs, len);
      if (m == -std::numeric_limits<A>::infinity()) continue;  // an all -inf chunk adds nothing
      state = lse_merge(state, LseState<A>{m * scale, chunk_sum_exp(xs, len, m, scale)});
    }
  }
  return lse_value(state);
}

// out_v = c_times_s (1[v == tok] - exp(s x_v - lse)) for the whole row.
template <typename T>
void row_logprob_grad(const T* x, int64_t n, acc_t<T> scale, acc_t<T> lse, int64_t tok, acc_t<T> c_times_s, T* out) {
  using A = acc_t<T>;
  A buf[kChunk];
  A res[std::is_same_v<T, A> ? 1 : kChunk];
  for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
    const int64_t len = std::min(kChunk, n - c0);
    const A* xs = widen(x + c0, len, buf);
    if constexpr (std::is_same_v<T, A>) {
      chunk_neg_softmax(xs, len, scale, lse, c_times_s, out + c0);
    } else {
      chunk_neg_softmax(xs, len, scale, lse, c_times_s, res);
      for (int64_t i = 0; i < len; ++i) store(out + c0 + i, res[i]);
    }
  }
  store(out + tok, logprob_grad_one<A>(load(x + tok) * scale, lse, true, c_times_s));
}

// One row: skip it if masked out, check its token, get its lse (computed or saved), write its log-prob and
// lse, then its gradient scaled by coef(b, t, logp, weight).
template <typename T, typename Coef>
void categorical_row(const CategoricalIn<T>& in, const CategoricalOut<T>& out, const Coef& coef, int64_t b, int64_t t) {
  using A = acc_t<T>;
  T* grad = out.grad ? out.grad_row(b, t) : nullptr;
  const A w = in.weight(b, t);
  if (w == 0) {
    if (out.logp) out.logp(b, t) = 0;
    if (out.lse) out.lse(b, t) = 0;
    if (grad) std::memset(static_cast<void*>(grad), 0, sizeof(T) * static_cast<size_t>(in.vocab));
    return;
  }
  const int64_t tok = in.tokens(b, t);
  if (!in.token_ok(tok)) throw bad_token_error(b, t, tok, in.vocab);
  const T* x = in.row(b, t);
  const A lse = out.saved_lse ? out.saved_lse(b, t) : row_logsumexp(x, in.vocab, in.inv_temp);
  const A logp = load(x + tok) * in.inv_temp - lse;
  if (out.logp) out.logp(b, t) = out.weighted ? w * logp : logp;
  if (out.lse) out.lse(b, t) = lse;
  if (!grad) return;
  const A c_times_s = coef(b, t, logp, w) * in.inv_temp;
  if (c_times_s == 0) {
    std::memset(static_cast<void*>(grad), 0, sizeof(T) * static_cast<size_t>(in.vocab));
    return;
  }
  row_logprob_grad(x, in.vocab, in.inv_temp, lse, tok, c_times_s, grad);
}

}  // namespace cpu_rows

// The row pass on the CPU: rows in parallel on the shared pool.
struct CpuRows {
  template <typename T, typename Coef>
  void operator()(const CategoricalIn<T>& in, const CategoricalOut<T>& out, const Coef& coef) const {
    if (out.grad && out.gs1 == in.vocab && out.gs0 == in.steps * in.vocab) {
      advise_huge_pages(out.grad, sizeof(T) * static_cast<size_t>(in.rows() * in.vocab));
    }
    const int64_t grain = std::max<int64_t>(1, 8192 / in.vocab);
    parallel_for(in.rows(), grain, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) cpu_rows::categorical_row(in, out, coef, r / in.steps, r % in.steps);
    });
  }
};

}  // namespace ript
