// kernels/cpu/thread_pool.cpp
#include "cpu/thread_pool.h"

#include <immintrin.h>

namespace minerva::cpu {
namespace {
constexpr int kSpins = 1 << 16;  // ~tens of microseconds of pause before sleeping
}

ThreadPool::ThreadPool(int n_threads) {
    n_ = n_threads > 0 ? n_threads : static_cast<int>(std::thread::hardware_concurrency());
    if (n_ < 1) n_ = 1;
    if (n_ > 256) n_ = 256;
    threads_.reserve(static_cast<size_t>(n_ - 1));
    for (int i = 1; i < n_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
    stop_.store(true, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_acq_rel);
    generation_.notify_all();
    for (auto& t : threads_) t.join();
}

void ThreadPool::dispatch(Job job, void* arg) {
    job_ = job;
    arg_ = arg;
    pending_.store(n_ - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    job(arg, 0, n_);
    int spins = 0;
    while (pending_.load(std::memory_order_acquire) != 0) {
        if (++spins < kSpins) {
            _mm_pause();
        } else {
            std::this_thread::yield();
        }
    }
}

void ThreadPool::worker(int ith) {
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = generation_.load(std::memory_order_acquire)) == seen) {
            if (++spins < kSpins) {
                _mm_pause();
            } else {
                generation_.wait(seen, std::memory_order_acquire);
            }
        }
        seen = g;
        if (stop_.load(std::memory_order_acquire)) return;
        job_(arg_, ith, n_);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
}

}  // namespace minerva::cpu
