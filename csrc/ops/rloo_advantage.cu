#include "common/cuda_check.h"
#include "common/dispatch.h"
#include "ops/rloo_advantage.h"

namespace ript {
namespace {

// One thread per group: K is small (8-16 rollouts per context), groups are many.
template <typename T>
__global__ void rloo_advantage_kernel(const T* r, int64_t rs0, int64_t rs1, T* o, int64_t os0, int64_t os1,
                                      int64_t groups, int64_t k) {
  const int64_t g = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (g >= groups) return;
  using A = acc_t<T>;
  A sum = 0;
  for (int64_t j = 0; j < k; ++j) sum += load(r + g * rs0 + j * rs1);
  for (int64_t j = 0; j < k; ++j) store(o + g * os0 + j * os1, rloo_advantage_one<A>(load(r + g * rs0 + j * rs1), sum, k));
}

template <typename T>
__global__ void informative_groups_kernel(const T* r, int64_t rs0, int64_t rs1, bool* o, int64_t os0, int64_t groups,
                                          int64_t k) {
  const int64_t g = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (g >= groups) return;
  const auto first = load(r + g * rs0);
  bool differs = false;
  for (int64_t j = 1; j < k && !differs; ++j) differs = load(r + g * rs0 + j * rs1) != first;
  o[g * os0] = differs;
}

constexpr int kThreads = 256;

}  // namespace

void rloo_advantage_cuda(const TensorRef& rewards, const TensorRef& out, int device, uintptr_t stream) {
  check_ref(rewards, "rewards", 2);
  check_ref(out, "out", 2);
  const int64_t groups = rewards.size(0), k = rewards.size(1);
  if (k < 2) throw std::invalid_argument("rewards: need K >= 2 rollouts per group");
  if (groups == 0) return;
  cudaStream_t s = use_device(device, stream);
  dispatch_floating(rewards.dtype, "rewards", [&](auto tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    rloo_advantage_kernel<T><<<blocks_for(groups, kThreads), kThreads, 0, s>>>(
        rewards.data<T>(), rewards.stride(0), rewards.stride(1), out.data<T>(), out.stride(0), out.stride(1), groups, k);
  });
  check_launch("rloo_advantage_kernel");
}

void informative_groups_cuda(const TensorRef& rewards, const TensorRef& out, int device, uintptr_t stream) {
  check_ref(rewards, "rewards", 2);
  check_ref(out, "out", 1);
  const int64_t groups = rewards.size(0), k = rewards.size(1);
  if (k < 2) throw std::invalid_argument("rewards: need K >= 2 rollouts per group");
  if (groups == 0) return;
  cudaStream_t s = use_device(device, stream);
  dispatch_floating(rewards.dtype, "rewards", [&](auto tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    informative_groups_kernel<T><<<blocks_for(groups, kThreads), kThreads, 0, s>>>(
        rewards.data<T>(), rewards.stride(0), rewards.stride(1), out.data<bool>(), out.stride(0), groups, k);
  });
  check_launch("informative_groups_kernel");
}

}  // namespace ript
