// A hint for large output buffers that a CPU kernel is about to write in full.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace ript {

// Asks Linux to back the buffer with transparent huge pages (when THP is in "madvise" mode, the default on
// many distributions). A freshly allocated (B, T, V) gradient is otherwise faulted in 4 KiB at a time, which on
// virtual machines costs as much as computing it. Only the 2 MiB-aligned inside of the buffer is advised;
// failure is harmless and ignored.
inline void advise_huge_pages(void* data, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(kHuge - 1);
  if (end > begin) (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)data;
  (void)bytes;
#endif
}

}  // namespace ript
