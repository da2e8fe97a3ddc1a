// A deterministic parallel sum on the shared pool: the items are cut into fixed blocks, each block is summed
// by whichever thread takes it, and the block sums are added in block order. The result is bit-identical
// whatever the thread count, which the pool's contract requires of every kernel.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/thread_pool.h"

namespace ript {

// `block_sum(begin, end)` returns the Acc of items [begin, end); Acc needs `+=` and a zero default value.
template <typename Acc, typename BlockSum>
Acc ordered_sum(int64_t n, int64_t block, const BlockSum& block_sum) {
  if (n <= 0) return Acc{};
  const int64_t blocks = (n + block - 1) / block;
  std::vector<Acc> partial(static_cast<size_t>(blocks));
  parallel_for(blocks, 1, [&](int64_t first, int64_t last) {
    for (int64_t i = first; i < last; ++i) partial[i] = block_sum(i * block, std::min(n, (i + 1) * block));
  });
  Acc total{};
  for (const Acc& p : partial) total += p;
  return total;
}

}  // namespace ript
