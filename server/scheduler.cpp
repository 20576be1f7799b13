// scheduler.cpp: the continuous-batching loop. Each step: admit queued jobs into free slots
// (choosing the slot whose cached tokens share the longest prefix with the prompt), drop
// cancelled jobs, evaluate every active slot's pending tokens (a new prompt's uncached part, or
// the last sampled token) in one eval_batch, then sample one token per slot.
#include "scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "metrics.h"
#include "minerva/error.h"

namespace minerva::serve {

using Clock = std::chrono::steady_clock;

static double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Scheduler::Slot {
    std::shared_ptr<Job> job;
    std::unique_ptr<Sampler> sampler;
    std::unique_ptr<StreamDecoder> decoder;
    std::vector<int32_t> feed;  // tokens to evaluate in the next step
    std::string text;           // all generated text
    size_t emitted = 0;         // bytes of text handed to the job
    Clock::time_point t_queued, t_admitted, t_last;
    bool first = true;
};

Scheduler::Scheduler(std::shared_ptr<Model> model, const SessionOptions& opts, int max_queue, Metrics* metrics)
    : model_(model), session_(model, opts), metrics_(metrics), n_ctx_(session_.n_ctx()), n_slots_(session_.n_seq()),
      max_queue_(max_queue), slots_(static_cast<size_t>(session_.n_seq())) {
    thread_ = std::thread([this] { run(); });
}

Scheduler::~Scheduler() {
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    auto fail = [](const std::shared_ptr<Job>& j) {
        std::lock_guard lock(j->mu);
        j->done = true;
        j->finish_reason = "error";
        j->error = "the model was unloaded";
        j->cv.notify_all();
    };
    for (auto& j : queue_) fail(j);
    for (auto& s : slots_)
        if (s.job) fail(s.job);
}

bool Scheduler::submit(const std::vector<std::shared_ptr<Job>>& jobs) {
    {
        std::lock_guard lock(mu_);
        int free_slots = n_slots_ - n_active_.load();
        int waiting = static_cast<int>(queue_.size()) + static_cast<int>(jobs.size()) - std::max(free_slots, 0);
        if (waiting > max_queue_) return false;
        for (auto& j : jobs) {
            j->t_submit = Clock::now();
            queue_.push_back(j);
        }
    }
    cv_.notify_all();
    return true;
}

void Scheduler::cancel(const std::shared_ptr<Job>& job) {
    job->cancelled = true;
    cv_.notify_all();
}

void Scheduler::cancel_all(const std::string& message) {
    {
        std::lock_guard lock(mu_);
        abort_message_ = message;
        for (auto& j : queue_) j->cancelled = true;
    }
    cv_.notify_all();
}

SchedulerStats Scheduler::stats() const {
    SchedulerStats s;
    {
        std::lock_guard lock(mu_);
        s.queued = static_cast<int>(queue_.size());
    }
    s.active = n_active_.load();
    s.slots = n_slots_;
    s.kv_cells_used = kv_used_.load();
    s.kv_cells_total = static_cast<int64_t>(n_ctx_) * n_slots_;
    s.kv_bytes = session_.kv_bytes();
    s.kv_bytes_per_token = session_.kv_bytes_per_token();
    return s;
}

void Scheduler::run() {
    while (true) {
        {
            std::unique_lock lock(mu_);
            cv_.wait(lock, [&] { return stop_ || !queue_.empty() || n_active_.load() > 0; });
            if (stop_) return;
            admit(lock);
        }
        if (n_active_.load() > 0) step();
    }
}

// Moves queued jobs into free slots. Called with mu_ held.
void Scheduler::admit(std::unique_lock<std::mutex>&) {
    // cancelled jobs leave the queue at once
    for (auto it = queue_.begin(); it != queue_.end();) {
        if ((*it)->cancelled) {
            std::lock_guard lock((*it)->mu);
            (*it)->done = true;
            (*it)->finish_reason = abort_message_.empty() ? "cancelled" : "error";
            (*it)->error = abort_message_;
            (*it)->cv.notify_all();
            it = queue_.erase(it);
        } else {
            ++it;
        }
    }
    while (!queue_.empty()) {
        // the free slot whose cache shares the longest prefix with the prompt
        auto& job = queue_.front();
        int best = -1;
        size_t best_common = 0;
        for (int k = 0; k < n_slots_; ++k) {
            if (slots_[static_cast<size_t>(k)].job) continue;
            auto cached = session_.tokens(k);
            size_t common = 0;
            while (common < cached.size() && common < job->prompt.size() && cached[common] == job->prompt[common]) ++common;
            if (best < 0 || common > best_common) best = k, best_common = common;
        }
        if (best < 0) break;
        if (job->embed) {  // evaluated here and now in the free slot's sequence; nothing to decode
            auto j = job;
            queue_.pop_front();
            std::vector<float> e;
            std::string err;
            try {
                e = minerva::embed(session_, j->prompt, j->pooling, true, false, best).pooled;
            } catch (const std::exception& ex) {
                err = ex.what();
            }
            std::lock_guard lock(j->mu);
            j->embedding = std::move(e);
            j->n_prompt = static_cast<int>(j->prompt.size());
            j->done = true;
            j->finish_reason = err.empty() ? "stop" : "error";
            j->error = err;
            j->cv.notify_all();
            continue;
        }
        Slot& s = slots_[static_cast<size_t>(best)];
        s = Slot{};
        s.job = job;
        queue_.pop_front();
        // keep the shared prefix (across a dropped middle of a conversation, by a shift); at least
        // the last prompt token is evaluated again for its logits
        (void)best_common;
        const size_t common = static_cast<size_t>(session_.reuse_prefix(best, s.job->prompt));
        s.feed.assign(s.job->prompt.begin() + static_cast<long>(common), s.job->prompt.end());
        s.sampler = std::make_unique<Sampler>(s.job->sampling, session_.n_vocab());
        s.sampler->accept_prompt(s.job->prompt);  // the penalty window sees the prompt
        s.decoder = std::make_unique<StreamDecoder>(model_->vocab());
        s.t_admitted = Clock::now();
        {
            std::lock_guard lock(s.job->mu);
            s.job->n_prompt = static_cast<int>(s.job->prompt.size());
            s.job->n_cached = static_cast<int>(common);
            s.job->queue_seconds = std::chrono::duration<double>(s.t_admitted - s.job->t_submit).count();
        }
        n_active_.fetch_add(1);
    }
}

void Scheduler::finish(Slot& s, const std::string& reason, const std::string& error) {
    auto& j = *s.job;
    {
        std::lock_guard lock(j.mu);
        if (reason != "error" && reason != "cancelled" && s.emitted < s.text.size()) j.text += s.text.substr(s.emitted);
        j.done = true;
        j.finish_reason = reason;
        j.error = error;
        j.total_seconds = since(s.t_admitted) + j.queue_seconds;
        j.cv.notify_all();
    }
    if (metrics_) metrics_->tokens(j.n_prompt - j.n_cached, j.n_gen);
    prompt_total_ += j.n_prompt - j.n_cached;
    gen_total_ += j.n_gen;
    s.job.reset();
    s.sampler.reset();
    s.decoder.reset();
    s.feed.clear();
    n_active_.fetch_sub(1);
}

// Handles one sampled token for a slot. Returns false when the slot's job finished.
bool Scheduler::emit(Slot& s, int32_t tok, std::span<const float> logits) {
    Job& j = *s.job;
    const Vocab& vocab = *model_->vocab();
    TokenInfo info;
    info.id = tok;
    if (j.top_logprobs >= 0) {
        info.logprob = token_logprob(logits, tok);
        if (j.top_logprobs > 0) info.top = top_logprobs(logits, j.top_logprobs);
    }
    if (vocab.is_eog(tok)) {
        finish(s, "stop");
        return false;
    }
    s.sampler->accept(tok);
    s.text += s.decoder->push(tok);

    // stop strings: cut at the first one; hold back a tail that may still become one
    size_t cut = std::string::npos, hold = 0;
    for (const auto& stop : j.stop) {
        size_t from = s.emitted > stop.size() ? s.emitted - stop.size() : 0;
        size_t p = s.text.find(stop, from);
        if (p != std::string::npos && p < cut) cut = p;
        size_t max_len = std::min(s.text.size() - s.emitted, stop.size() - 1);
        for (size_t len = max_len; len > hold; --len)
            if (s.text.compare(s.text.size() - len, len, stop, 0, len) == 0) {
                hold = len;
                break;
            }
    }
    bool stopped = cut != std::string::npos;
    size_t upto = stopped ? std::max(cut, s.emitted) : s.text.size() - hold;
    {
        std::lock_guard lock(j.mu);
        if (upto > s.emitted) j.text += s.text.substr(s.emitted, upto - s.emitted);
        s.emitted = std::max(s.emitted, upto);
        j.tokens.push_back(std::move(info));
        ++j.n_gen;
        if (s.first) {
            j.ttft_seconds = j.queue_seconds + since(s.t_admitted);
            if (metrics_) metrics_->time_to_first_token(j.ttft_seconds);
            s.first = false;
        } else if (metrics_) {
            metrics_->inter_token(since(s.t_last));
        }
        s.t_last = Clock::now();
        j.cv.notify_all();
    }
    if (stopped) {
        s.text.resize(s.emitted);
        finish(s, "stop");
        return false;
    }
    // The grammar (response_format, tools) is complete and admits nothing more.
    if (s.sampler->grammar() && s.sampler->grammar()->must_end()) {
        finish(s, "stop");
        return false;
    }
    if (j.n_gen >= j.max_tokens) {
        finish(s, "length");
        return false;
    }
    return true;
}

void Scheduler::step() {
    // cancelled jobs free their slot before anything is evaluated for them
    std::string abort_message;
    {
        std::lock_guard lock(mu_);
        abort_message = abort_message_;
    }
    for (auto& s : slots_) {
        if (s.job && !abort_message.empty()) finish(s, "error", abort_message);
        else if (s.job && s.job->cancelled) finish(s, "cancelled");
    }

    std::vector<Session::BatchItem> items;
    std::vector<int> seqs;
    for (int k = 0; k < n_slots_; ++k) {
        Slot& s = slots_[static_cast<size_t>(k)];
        if (!s.job) continue;
        const int n_past = session_.n_past(k), n_feed = static_cast<int>(s.feed.size());
        if (n_past + n_feed > n_ctx_) {
            // the context of this slot is full: shift (drop the oldest half after n_keep) or finish
            const int n_keep = std::min(s.job->n_keep, n_past);
            const int n_discard = std::max((n_past - n_keep + 1) / 2, n_past + n_feed - n_ctx_);
            if (!s.job->context_shift || n_keep + n_discard > n_past) {
                finish(s, "length");
                continue;
            }
            session_.shift(k, n_keep, n_discard);
            ++shifts_;
        }
        items.push_back({k, s.feed});
        seqs.push_back(k);
    }
    if (items.empty()) return;

    auto t0 = Clock::now();
    try {
        session_.eval_batch(items);
    } catch (const std::exception& e) {
        spdlog::error("decode step failed: {}", e.what());
        for (int k : seqs) {
            session_.clear(k);
            finish(slots_[static_cast<size_t>(k)], "error", e.what());
        }
        return;
    }
    int produced = 0;
    for (int k : seqs) {
        Slot& s = slots_[static_cast<size_t>(k)];
        if (!s.job) continue;
        auto logits = session_.last_logits(k);
        try {
            int32_t tok = s.sampler->sample(logits);
            ++produced;
            if (emit(s, tok, logits)) s.feed.assign(1, tok);
        } catch (const Error& e) {  // a grammar with no way on for this vocabulary
            session_.clear(k);
            finish(s, "error", e.what());
        }
    }
    int64_t used = 0;
    for (int k = 0; k < n_slots_; ++k) used += session_.n_past(k);
    kv_used_ = used;
    if (metrics_) metrics_->decode_step(produced, std::chrono::duration<double>(Clock::now() - t0).count());
}

}  // namespace minerva::serve
