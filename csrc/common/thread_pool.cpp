#include "common/thread_pool.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace ript {
namespace {

thread_local bool tls_inside_pool_job = false;

int default_num_threads() {
  if (const char* env = std::getenv("RIPT_FAST_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

// One job at a time: the caller publishes (fn, n, chunk) under a new generation number, workers claim chunks
// from an atomic counter until none are left, and the last one out wakes the caller.
class Pool {
 public:
  explicit Pool(int threads) : threads_(threads) {
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
  }

  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_workers_.notify_all();
    for (auto& t : workers_) t.join();
  }

  int threads() const { return threads_; }

  void run(int64_t n, int64_t chunk, const std::function<void(int64_t, int64_t)>& fn) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      fn_ = &fn;
      n_ = n;
      chunk_ = chunk;
      next_chunk_.store(0);
      error_ = nullptr;
      workers_busy_ = static_cast<int>(workers_.size());
      ++generation_;
    }
    wake_workers_.notify_all();
    run_chunks();
    std::unique_lock<std::mutex> lock(mutex_);
    job_done_.wait(lock, [this] { return workers_busy_ == 0; });
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void run_chunks() {
    tls_inside_pool_job = true;
    try {
      for (;;) {
        const int64_t begin = next_chunk_.fetch_add(1) * chunk_;
        if (begin >= n_) break;
        (*fn_)(begin, std::min(n_, begin + chunk_));
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
      next_chunk_.store(n_);  // no point starting more chunks of a failed job
    }
    tls_inside_pool_job = false;
  }

  void worker_loop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_workers_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
      }
      run_chunks();
      std::lock_guard<std::mutex> lock(mutex_);
      if (--workers_busy_ == 0) job_done_.notify_one();
    }
  }

  const int threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_workers_, job_done_;
  uint64_t generation_ = 0;
  bool stop_ = false;
  int workers_busy_ = 0;
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, chunk_ = 1;
  std::atomic<int64_t> next_chunk_{0};
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

std::mutex g_pool_use;   // held by the one caller running a job on the pool
std::mutex g_pool_make;  // guards creation/resizing of g_pool
Pool* g_pool = nullptr;  // intentionally leaked after fork (its threads do not exist in the child)
int g_requested_threads = 0;

void forget_pool_in_child() {
  // After fork() only the forking thread exists; the old pool's threads and mutex states are meaningless.
  // Leak the old object (destroying it would join threads that are not there) and start afresh lazily.
  g_pool = nullptr;
  new (&g_pool_use) std::mutex();
  new (&g_pool_make) std::mutex();
}

Pool& pool_with_size(int threads) {
  static const bool registered = [] {
    pthread_atfork(nullptr, nullptr, forget_pool_in_child);
    return true;
  }();
  (void)registered;
  std::lock_guard<std::mutex> lock(g_pool_make);
  if (g_pool == nullptr || g_pool->threads() != threads) {
    delete g_pool;
    g_pool = new Pool(threads);
  }
  return *g_pool;
}

}  // namespace

int num_threads() {
  std::lock_guard<std::mutex> lock(g_pool_make);
  if (g_requested_threads == 0) g_requested_threads = default_num_threads();
  return g_requested_threads;
}

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("num_threads must be >= 1, got " + std::to_string(n));
  std::lock_guard<std::mutex> lock(g_pool_make);
  g_requested_threads = n;
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int threads = num_threads();
  const bool serial = threads == 1 || n <= grain || tls_inside_pool_job;
  std::unique_lock<std::mutex> use(g_pool_use, std::defer_lock);
  if (serial || !use.try_lock()) {
    fn(0, n);
    return;
  }
  // Several chunks per thread so that uneven items (finished envs, ragged rows) balance out.
  const int64_t chunks_wanted = static_cast<int64_t>(threads) * 4;
  const int64_t chunk = std::max(grain, (n + chunks_wanted - 1) / chunks_wanted);
  pool_with_size(threads).run(n, chunk, fn);
}

}  // namespace ript
