// Error handling, device selection and scratch memory for the CUDA kernels (only compiled with RIPT_WITH_CUDA).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

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

// True while `stream` records a CUDA graph: no host synchronisation is allowed then.
inline bool stream_is_capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  cuda_check(cudaStreamIsCapturing(stream, &status), "cudaStreamIsCapturing");
  return status != cudaStreamCaptureStatusNone;
}

// cudaMallocAsync draws from the device's default pool, which by default hands its memory back to the driver at
// every synchronisation; the kernels' small per-call scratch would then be re-mapped on each call. Once per
// device, the pool is told to keep up to 64 MiB cached. A higher threshold set by someone else (torch's
// cudaMallocAsync backend sets the maximum) is left as it is.
inline void retain_pool_memory() {
  static std::mutex mutex;
  static std::vector<bool> done;
  int device = 0;
  cuda_check(cudaGetDevice(&device), "cudaGetDevice");
  std::lock_guard<std::mutex> lock(mutex);
  if (static_cast<size_t>(device) < done.size() && done[device]) return;
  if (done.size() <= static_cast<size_t>(device)) done.resize(device + 1, false);
  cudaMemPool_t pool = nullptr;
  cuda_check(cudaDeviceGetDefaultMemPool(&pool, device), "cudaDeviceGetDefaultMemPool");
  uint64_t threshold = 0;
  cuda_check(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold), "cudaMemPoolGetAttribute");
  uint64_t keep = uint64_t{64} << 20;
  if (threshold < keep) {
    cuda_check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep), "cudaMemPoolSetAttribute");
  }
  done[device] = true;
}

// Stream-ordered scratch memory for the duration of one call (n == 0 allocates nothing).
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer(int64_t n, cudaStream_t stream) : stream_(stream) {
    if (n > 0) {
      retain_pool_memory();
      void* p = nullptr;
      cuda_check(cudaMallocAsync(&p, sizeof(T) * static_cast<size_t>(n), stream), "cudaMallocAsync");
      ptr_ = static_cast<T*>(p);
    }
  }
  DeviceBuffer(DeviceBuffer&& other) noexcept : ptr_(std::exchange(other.ptr_, nullptr)), stream_(other.stream_) {}
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(DeviceBuffer&&) = delete;
  ~DeviceBuffer() {
    if (ptr_ != nullptr) cudaFreeAsync(ptr_, stream_);
  }
  T* data() const { return ptr_; }

 private:
  T* ptr_ = nullptr;
  cudaStream_t stream_;
};

}  // namespace ript
