// The CUDA row pass of the categorical ops: one block per (b, t) row. The block makes one online log-sum-exp
// pass (per-thread running (max, sum), merged by a deterministic tree), then, when a gradient is wanted,
// writes the gradient row from that lse. Same per-row contract as the CPU loop (categorical_rows_cpu.h).
#pragma once

#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <limits>

#include "common/block_reduce.cuh"
#include "common/cuda_check.h"
#include "ops/categorical_logprob.h"

namespace ript {
namespace cuda_rows {

constexpr int kThreads = 256;

struct LseMerge {
  template <typename A>
  __device__ LseState<A> operator()(const LseState<A>& a, const LseState<A>& b) const {
    return lse_merge(a, b);
  }
};

// A masked row writes zeros; a row with an out-of-range token records itself in `bad_row` (the host raises)
// and is poisoned with NaN, never reading the logits (the only outcome while capturing a graph).
template <typename T, typename Coef>
__global__ void __launch_bounds__(kThreads)
    rows_kernel(CategoricalIn<T> in, CategoricalOut<T> out, Coef coef, unsigned long long* bad_row) {
  using A = acc_t<T>;
  const int64_t r = blockIdx.x;
  const int64_t b = r / in.steps, t = r % in.steps;
  T* grad = out.grad ? out.grad_row(b, t) : nullptr;
  const A w = in.weight(b, t);
  const int64_t tok = w != 0 ? in.tokens(b, t) : 0;
  const bool bad = w != 0 && !in.token_ok(tok);
  if (w == 0 || bad) {
    const A fill = bad ? std::numeric_limits<A>::quiet_NaN() : A(0);
    if (threadIdx.x == 0) {
      if (out.logp) out.logp(b, t) = fill;
      if (out.lse) out.lse(b, t) = fill;
      if (bad && bad_row != nullptr) atomicMin(bad_row, static_cast<unsigned long long>(r));
    }
    if (grad) {
      for (int64_t v = threadIdx.x; v < in.vocab; v += kThreads) store(grad + v, fill);
    }
    return;
  }
  const T* x = in.row(b, t);
  A lse;
  if (out.saved_lse) {
    lse = out.saved_lse(b, t);
  } else {
    LseState<A> state;
    for (int64_t v = threadIdx.x; v < in.vocab; v += kThreads) lse_push(state, load(x + v) * in.inv_temp);
    lse = lse_value(block_reduce<kThreads>(state, LseMerge{}));
  }
  const A logp = load(x + tok) * in.inv_temp - lse;
  if (threadIdx.x == 0) {
    if (out.logp) out.logp(b, t) = out.weighted ? w * logp : logp;
    if (out.lse) out.lse(b, t) = lse;
  }
  if (!grad) return;
  const A c_times_s = coef(b, t, logp, w) * in.inv_temp;
  for (int64_t v = threadIdx.x; v < in.vocab; v += kThreads) {
    store(grad + v, c_times_s == 0 ? A(0) : logprob_grad_one<A>(load(x + v) * in.inv_temp, lse, v == tok, c_times_s));
  }
}

// After the kernel: waits for it and raises the CPU backend's IndexError for the first bad row, if any.
template <typename T>
void raise_bad_token(const CategoricalIn<T>& in, const unsigned long long* bad_row, cudaStream_t stream) {
  unsigned long long row = ULLONG_MAX;
  cuda_check(cudaMemcpyAsync(&row, bad_row, sizeof row, cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync");
  cuda_check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  if (row == ULLONG_MAX) return;
  const int64_t b = static_cast<int64_t>(row) / in.steps, t = static_cast<int64_t>(row) % in.steps;
  const int64_t offset = b * in.tokens.s0 + t * in.tokens.s1;
  int64_t token = 0;
  if (in.tokens.is32) {
    int32_t v = 0;
    cuda_check(cudaMemcpy(&v, static_cast<const int32_t*>(in.tokens.p) + offset, sizeof v, cudaMemcpyDeviceToHost),
               "cudaMemcpy");
    token = v;
  } else {
    cuda_check(cudaMemcpy(&token, static_cast<const int64_t*>(in.tokens.p) + offset, sizeof token,
                          cudaMemcpyDeviceToHost),
               "cudaMemcpy");
  }
  throw bad_token_error(b, t, token, in.vocab);
}

}  // namespace cuda_rows

// The row pass on a CUDA stream; synchronises once to report out-of-range tokens (not while capturing).
struct CudaRows {
  cudaStream_t stream;

  template <typename T, typename Coef>
  void operator()(const CategoricalIn<T>& in, const CategoricalOut<T>& out, const Coef& coef) const {
    const int64_t rows = in.rows();
    if (rows == 0) return;
    if (rows > INT_MAX) throw std::invalid_argument("logits: more than 2^31 - 1 rows (B * T) for one launch");
    const bool report = !stream_is_capturing(stream);
    DeviceBuffer<unsigned long long> bad_row(report ? 1 : 0, stream);
    if (report) cuda_check(cudaMemsetAsync(bad_row.data(), 0xff, sizeof(unsigned long long), stream), "cudaMemsetAsync");
    cuda_rows::rows_kernel<T, Coef>
        <<<static_cast<unsigned int>(rows), cuda_rows::kThreads, 0, stream>>>(in, out, coef, bad_row.data());
    check_launch("categorical rows_kernel");
    if (report) cuda_rows::raise_bad_token(in, bad_row.data(), stream);
  }
};

}  // namespace ript
