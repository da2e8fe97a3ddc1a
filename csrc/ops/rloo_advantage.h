// Leave-one-out advantage (RLOO, paper Eq. 5) for groups of K rollouts of one context:
//   b_k = (sum_j R_j - R_k) / (K - 1),   A_k = R_k - b_k = (K R_k - sum_j R_j) / (K - 1).
// The map R -> A is linear and symmetric, so its backward is the same map applied to the incoming gradient.
// A group is informative (kept by dynamic rejection, Sec. 4.2) unless all its K rewards are equal.
#pragma once

#include <cstdint>

#include "common/scalar.h"
#include "common/tensor_ref.h"

namespace ript {

template <typename A>
RIPT_HD A rloo_advantage_one(A reward, A group_sum, int64_t k) {
  return (static_cast<A>(k) * reward - group_sum) / static_cast<A>(k - 1);
}

// rewards, out: (G, K), any strides; out may be the gradient buffer of the backward.
void rloo_advantage_cpu(const TensorRef& rewards, const TensorRef& out);
// rewards: (G, K) floating; out: (G,) bool.
void informative_groups_cpu(const TensorRef& rewards, const TensorRef& out);

#ifdef RIPT_WITH_CUDA
void rloo_advantage_cuda(const TensorRef& rewards, const TensorRef& out, int device, uintptr_t stream);
void informative_groups_cuda(const TensorRef& rewards, const TensorRef& out, int device, uintptr_t stream);
#endif

}  // namespace ript
