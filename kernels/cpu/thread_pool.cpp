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
    span_next_ = std::vector<SpanNext>(static_cast<size_t>(n_));
    threads_.reserve(static_cast<size_t>(n_ - 1));
    for (int i = 1; i < n_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
    stop_.store(true, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_acq_rel);
    generation_.notify_all();
    for (auto& t : threads_) t.join();
}

int64_t ThreadPool::run_chunk(int64_t c, int ith) {
    const int64_t b = c * grain_, e = b + grain_ < n_items_ ? b + grain_ : n_items_;
    job_(arg_, b, e, ith);
    return e - b;
}

void ThreadPool::work(int ith) {
    const int64_t chunks = (n_items_ + grain_ - 1) / grain_;
    int64_t done = 0;  // published once at the end: one shared write per thread, not per chunk
    if (!spans_) {
        for (int64_t c; (c = next_.fetch_add(1, std::memory_order_relaxed)) < chunks;) done += run_chunk(c, ith);
    } else {
        // Own span first, then whatever is left of the others', each front to back.
        for (int j = 0; j < n_; ++j) {
            const int s = (ith + j) % n_;
            const int64_t first = chunks * s / n_, end = chunks * (s + 1) / n_;
            for (int64_t c; (c = first + span_next_[static_cast<size_t>(s)].v.fetch_add(1, std::memory_order_relaxed)) < end;)
                done += run_chunk(c, ith);
        }
    }
    if (done) done_.fetch_add(done, std::memory_order_acq_rel);
}

void ThreadPool::dispatch(Job job, void* arg, int64_t n, int64_t grain, bool spans) {
    // No worker is inside a job here (the previous dispatch waited for them), so the fields
    // can be rewritten before the job is opened.
    job_ = job;
    arg_ = arg;
    n_items_ = n;
    grain_ = grain;
    spans_ = spans;
    next_.store(0, std::memory_order_relaxed);
    if (spans)
        for (auto& s : span_next_) s.v.store(0, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    // Open by clearing the closed bit only: a late worker of an earlier job may be between its
    // increment (which found the job closed) and its decrement; storing 0 here would lose that
    // count and the close below would then wait forever.
    state_.fetch_and(~kClosed, std::memory_order_acq_rel);
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
