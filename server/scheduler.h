// scheduler.h: continuous batching for one loaded model. One thread owns the model's Session
// (n_seq = parallel slots) and runs the decode steps of every active request as one
// Session::eval_batch call; requests wait in a bounded queue for a free slot.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "minerva/model.h"

namespace minerva::serve {

class Metrics;

struct TokenInfo {
    int32_t id = 0;
    float logprob = 0;
    std::vector<std::pair<int32_t, float>> top;  // most likely alternatives, best first
};

// One generation stream (one choice of a request). Filled in by the HTTP thread, then owned by
// the scheduler until done; the HTTP thread takes output under mu.
struct Job {
    // input
    std::vector<int32_t> prompt;
    int max_tokens = 16;
    SamplerParams sampling;
    std::vector<std::string> stop;
    int top_logprobs = -1;  // < 0: no logprobs; 0: the chosen token's only
    bool embed = false;     // an embedding: the prompt is evaluated and pooled, nothing generated
    Pooling pooling = Pooling::Mean;
    std::vector<float> embedding;  // output of an embedding job ([n_embd], L2-normalised)
    // Context shift: when the slot's context fills while generating, drop the oldest half of the
    // tokens after the first n_keep and go on (otherwise finish with "length").
    bool context_shift = false;
    int n_keep = 0;

    // output, guarded by mu
    std::mutex mu;
    std::condition_variable cv;
    std::string text;                // produced, not yet taken
    std::vector<TokenInfo> tokens;   // produced, not yet taken
    bool done = false;
    std::string finish_reason;       // stop, length, cancelled, error
    std::string error;               // when finish_reason == "error"
    int n_prompt = 0, n_cached = 0, n_gen = 0;
    double queue_seconds = 0, ttft_seconds = 0, total_seconds = 0;

    std::atomic<bool> cancelled{false};
    std::chrono::steady_clock::time_point t_submit;  // set by submit()
};

struct SchedulerStats {
    int queued = 0;
    int active = 0;
    int slots = 0;
    int64_t kv_cells_used = 0;
    int64_t kv_cells_total = 0;
    size_t kv_bytes = 0;
    size_t kv_bytes_per_token = 0;
};

class Scheduler {
public:
    Scheduler(std::shared_ptr<Model> model, const SessionOptions& opts, int max_queue, Metrics* metrics);
    ~Scheduler();  // cancels what is queued or running and joins the thread

    // Queues all jobs (the n choices of one request) or none: false when the queue is full.
    bool submit(const std::vector<std::shared_ptr<Job>>& jobs);
    // Marks a job cancelled; its slot is freed before the next decode step.
    void cancel(const std::shared_ptr<Job>& job);
    // Ends every queued and running job with finish_reason "error" and this message (shutdown).
    void cancel_all(const std::string& message);
    // Tokens of finished jobs since this scheduler started: prompt tokens evaluated, generated.
    int64_t prompt_tokens_total() const { return prompt_total_.load(); }
    int64_t generated_tokens_total() const { return gen_total_.load(); }
    int64_t context_shifts_total() const { return shifts_.load(); }

    int n_ctx() const { return n_ctx_; }
    int n_slots() const { return n_slots_; }
    SchedulerStats stats() const;

private:
    struct Slot;
    void run();
    void admit(std::unique_lock<std::mutex>& lock);
    void step();
    void finish(Slot& s, const std::string& reason, const std::string& error = {});
    bool emit(Slot& s, int32_t tok, std::span<const float> logits);

    std::shared_ptr<Model> model_;
    Session session_;
    Metrics* metrics_;
    int n_ctx_, n_slots_, max_queue_;

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::shared_ptr<Job>> queue_;
    bool stop_ = false;
    std::vector<Slot> slots_;  // index = sequence id; touched only by the scheduler thread
    std::atomic<int> n_active_{0};
    std::atomic<int64_t> kv_used_{0};
    std::atomic<int64_t> prompt_total_{0}, gen_total_{0}, shifts_{0};
    std::string abort_message_;  // set by cancel_all (under mu_); jobs end with it
    std::thread thread_;
};

}  // namespace minerva::serve
