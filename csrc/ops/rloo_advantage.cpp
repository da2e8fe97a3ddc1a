#include "ops/rloo_advantage.h"

#include "common/dispatch.h"
#include "common/thread_pool.h"

namespace ript {
namespace {

void check_group_shapes(const TensorRef& rewards, const TensorRef& out, int64_t out_dim) {
  check_ref(rewards, "rewards", 2);
  check_ref(out, "out", out_dim);
  if (rewards.size(1) < 2) throw std::invalid_argument("rewards: need K >= 2 rollouts per group");
  if (out.size(0) != rewards.size(0) || (out_dim == 2 && out.size(1) != rewards.size(1))) {
    throw std::invalid_argument("out: shape does not match rewards");
  }
}

}  // namespace

void rloo_advantage_cpu(const TensorRef& rewards, const TensorRef& out) {
  check_group_shapes(rewards, out, 2);
  if (out.dtype != rewards.dtype) throw std::invalid_argument("out: dtype differs from rewards");
  const int64_t groups = rewards.size(0), k = rewards.size(1);
  dispatch_floating(rewards.dtype, "rewards", [&](auto tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    using A = acc_t<T>;
    const T* r = rewards.data<T>();
    T* o = out.data<T>();
    parallel_for(groups, 4096, [&](int64_t begin, int64_t end) {
      for (int64_t g = begin; g < end; ++g) {
        const T* row = r + g * rewards.stride(0);
        A sum = 0;
        for (int64_t j = 0; j < k; ++j) sum += load(row + j * rewards.stride(1));
        for (int64_t j = 0; j < k; ++j) {
          store(o + g * out.stride(0) + j * out.stride(1), rloo_advantage_one<A>(load(row + j * rewards.stride(1)), sum, k));
        }
      }
    });
  });
}

void informative_groups_cpu(const TensorRef& rewards, const TensorRef& out) {
  check_group_shapes(rewards, out, 1);
  check_dtype(out, "out", {DType::kBool});
  const int64_t groups = rewards.size(0), k = rewards.size(1);
  dispatch_floating(rewards.dtype, "rewards", [&](auto tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const T* r = rewards.data<T>();
    bool* o = out.data<bool>();
    parallel_for(groups, 4096, [&](int64_t begin, int64_t end) {
      for (int64_t g = begin; g < end; ++g) {
        const T* row = r + g * rewards.stride(0);
        const auto first = load(row);
        bool differs = false;
        for (int64_t j = 1; j < k && !differs; ++j) differs = load(row + j * rewards.stride(1)) != first;
        o[g * out.stride(0)] = differs;
      }
    });
  });
}

}  // namespace ript
