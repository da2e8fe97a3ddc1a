// Error handling and device selection for the CUDA kernels (only compiled with RIPT_WITH_CUDA).
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace ript {

inline void cuda_check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

// Kernels run on the caller's device and stream (torch's current ones, passed as integers). The device is
// set explicitly because this module links its own CUDA runtime, whose current device is not torch's.
inline cudaStream_t use_device(int device, uintptr_t stream) {
  cuda_check(cudaSetDevice(device), "cudaSetDevice");
  return reinterpret_cast<cudaStream_t>(stream);
}

inline void check_launch(const char* kernel) { cuda_check(cudaGetLastError(), kernel); }

inline unsigned int blocks_for(int64_t n, int threads) {
  return static_cast<unsigned int>((n + threads - 1) / threads);
}

}  // namespace ript
