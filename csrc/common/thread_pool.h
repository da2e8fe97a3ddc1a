// A persistent pool of worker threads shared by the whole core (CPU kernels and the batched simulator).
//
// Why our own pool rather than OpenMP: the simulator must step many MuJoCo datas with the GIL released and
// must be deterministic whatever the thread count, and the CPU kernels should not fight a second runtime's
// threads for the same cores. One pool, created lazily, sized once, reused by every call.
#pragma once

#include <cstdint>
#include <functional>

namespace ript {

// Runs `fn(begin, end)` over [0, n) split into contiguous chunks, one chunk per participating thread; the
// calling thread takes a chunk too and the call returns when all chunks are done. Chunks are at least
// `grain` items long (so tiny loops stay on the calling thread). Work items must be independent: which
// thread runs which item is not part of the contract, and results must not depend on it.
//
// Nested calls (from inside a worker) and calls made while another thread is using the pool run serially
// on the calling thread instead of waiting, so the pool can never deadlock.
// The first exception thrown by `fn` is rethrown on the calling thread after all chunks have finished.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// Number of threads a parallel_for uses (the caller included). Defaults to the environment variable
// RIPT_FAST_NUM_THREADS, else the number of hardware threads.
int num_threads();

// Resizes the pool; takes effect for the next parallel_for. n < 1 is rejected with std::invalid_argument.
void set_num_threads(int n);

}  // namespace ript
