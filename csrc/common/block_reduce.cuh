// A deterministic block-wide reduction: a fixed shared-memory tree, so the result does not depend on timing.
// Every thread of the block must call it; every thread gets the result.
#pragma once

namespace ript {

struct Plus {
  template <typename V>
  __device__ V operator()(V a, const V& b) const {
    a += b;
    return a;
  }
};

template <int kThreads, typename V, typename Op>
__device__ V block_reduce(V value, Op op) {
  static_assert((kThreads & (kThreads - 1)) == 0, "block_reduce needs a power-of-two block");
  // Raw storage: __shared__ variables cannot have constructors, and V (a partial-sum struct) may.
  __shared__ alignas(alignof(V)) unsigned char raw[sizeof(V) * kThreads];
  V* shared = reinterpret_cast<V*>(raw);
  shared[threadIdx.x] = value;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride >>= 1) {
    if (static_cast<int>(threadIdx.x) < stride) shared[threadIdx.x] = op(shared[threadIdx.x], shared[threadIdx.x + stride]);
    __syncthreads();
  }
  const V result = shared[0];
  __syncthreads();  // the storage is reused by the next call in the same kernel
  return result;
}

}  // namespace ript
