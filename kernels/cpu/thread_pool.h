// kernels/cpu/thread_pool.h: a fixed pool of n-1 workers plus the calling thread. run(f) calls
// f(ith, nth) on every thread and returns when all are done. Workers spin briefly on a
// generation counter (the common case during a forward pass: ops follow each other within
// microseconds) and then sleep on it (std::atomic wait), so an idle pool costs no CPU.
// run() allocates nothing: the job is a function pointer plus a pointer to the caller's lambda.
#pragma once
#include <atomic>
#include <thread>
#include <vector>

namespace minerva::cpu {

class ThreadPool {
public:
    explicit ThreadPool(int n_threads);  // n_threads <= 0: number of hardware threads
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return n_; }

    template <typename F>
    void run(F&& f) {
        if (n_ == 1) {
            f(0, 1);
            return;
        }
        using Fn = std::remove_reference_t<F>;
        dispatch([](void* p, int ith, int nth) { (*static_cast<Fn*>(p))(ith, nth); }, &f);
    }

private:
    using Job = void (*)(void*, int, int);
    void dispatch(Job job, void* arg);
    void worker(int ith);

    int n_ = 1;
    std::vector<std::thread> threads_;
    Job job_ = nullptr;
    void* arg_ = nullptr;
    alignas(64) std::atomic<unsigned> generation_{0};
    alignas(64) std::atomic<int> pending_{0};
    std::atomic<bool> stop_{false};
};

// Splits [0, n) into nth nearly equal chunks, rounded to multiples of `align`; returns chunk ith.
inline void split_range(long n, int ith, int nth, long align, long& begin, long& end) {
    const long units = (n + align - 1) / align;
    const long per = units / nth, extra = units % nth;
    const long ub = ith * per + (ith < extra ? ith : extra);
    const long ue = ub + per + (ith < extra ? 1 : 0);
    begin = ub * align < n ? ub * align : n;
    end = ue * align < n ? ue * align : n;
}

}  // namespace minerva::cpu
