// kernels/cpu/thread_pool.cpp
#include "cpu/thread_pool.h"

#include <immintrin.h>

#include <fstream>
#include <set>
#include <string>
#include <utility>

namespace minerva::cpu {
namespace {
constexpr int kSpins = 1 << 14;  // pauses before a worker sleeps (tens of microseconds)
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

void ThreadPool::work(int ith) {
    const int64_t n = n_items_, g = grain_;
    for (;;) {
        const int64_t b = next_.fetch_add(g, std::memory_order_relaxed);
        if (b >= n) return;
        const int64_t e = b + g < n ? b + g : n;
        job_(arg_, b, e, ith);
        done_.fetch_add(e - b, std::memory_order_acq_rel);
    }
}

void ThreadPool::dispatch(Job job, void* arg, int64_t n, int64_t grain) {
    // No worker is inside a job here (the previous dispatch waited for them), so the fields
    // can be rewritten before the job is opened.
    job_ = job;
    arg_ = arg;
    n_items_ = n;
    grain_ = grain;
    next_.store(0, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    state_.store(0, std::memory_order_release);  // open
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    work(0);
    // Every chunk is claimed; wait until the claimed ones are finished, then close the job so
    // that late workers skip it.
    // (pause, then yield: the thread we wait for may need this core)
    for (int spins = 0; done_.load(std::memory_order_acquire) < n; ++spins) spins < 2048 ? _mm_pause() : std::this_thread::yield();
    state_.fetch_or(kClosed, std::memory_order_acq_rel);
    for (int spins = 0; (state_.load(std::memory_order_acquire) & ~kClosed) != 0; ++spins)
        spins < 2048 ? _mm_pause() : std::this_thread::yield();
}

void ThreadPool::worker(int ith) {
    uint32_t seen = 0;
    for (;;) {
        uint32_t g;
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
        // Enter the job unless it is already closed.
        const uint32_t s = state_.fetch_add(1, std::memory_order_acq_rel);
        if (!(s & kClosed)) work(ith);
        state_.fetch_sub(1, std::memory_order_acq_rel);
    }
}

}  // namespace minerva::cpu
