// metrics.cpp: Prometheus text exposition (format 0.0.4) of the server's metrics.
#include "metrics.h"

#include <cstdio>

namespace minerva::serve {

namespace {
std::string num(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}
}  // namespace

void Histogram::observe(double v) {
    size_t k = 0;
    while (k < bounds_.size() && v > bounds_[k]) ++k;
    ++counts_[k];
    sum_ += v;
    ++count_;
}

void Histogram::write(std::string& out, const std::string& name, const std::string& help) const {
    out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
    uint64_t cum = 0;
    for (size_t k = 0; k < bounds_.size(); ++k) {
        cum += counts_[k];
        out += name + "_bucket{le=\"" + num(bounds_[k]) + "\"} " + std::to_string(cum) + "\n";
    }
    cum += counts_.back();
    out += name + "_bucket{le=\"+Inf\"} " + std::to_string(cum) + "\n";
    out += name + "_sum " + num(sum_) + "\n";
    out += name + "_count " + std::to_string(count_) + "\n";
}

Metrics::Metrics()
    : ttft_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}),
      latency_({0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}),
      itl_({0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5}) {}

void Metrics::inter_token(double seconds) {
    std::lock_guard lock(mu_);
    itl_.observe(seconds);
}

void Metrics::request(const std::string& route, int status) {
    std::lock_guard lock(mu_);
    ++requests_[{route, status}];
}

void Metrics::tokens(int64_t prompt, int64_t generated) {
    std::lock_guard lock(mu_);
    prompt_tokens_ += static_cast<uint64_t>(prompt);
    generated_tokens_ += static_cast<uint64_t>(generated);
}

void Metrics::time_to_first_token(double seconds) {
    std::lock_guard lock(mu_);
    ttft_.observe(seconds);
}

void Metrics::latency(double seconds) {
    std::lock_guard lock(mu_);
    latency_.observe(seconds);
}

void Metrics::decode_step(int n_tokens, double) {
    std::lock_guard lock(mu_);
    auto now = std::chrono::steady_clock::now();
    recent_.emplace_back(now, n_tokens);
    // keep ten seconds
    size_t drop = 0;
    while (drop < recent_.size() && now - recent_[drop].first > std::chrono::seconds(10)) ++drop;
    recent_.erase(recent_.begin(), recent_.begin() + static_cast<long>(drop));
}

std::string Metrics::render(const std::function<void(std::string&)>& extra) const {
    std::string out;
    std::lock_guard lock(mu_);
    out += "# HELP minerva_requests_total HTTP requests by route and status.\n# TYPE minerva_requests_total counter\n";
    for (auto& [key, n] : requests_)
        out += "minerva_requests_total{route=\"" + key.first + "\",status=\"" + std::to_string(key.second) + "\"} " +
               std::to_string(n) + "\n";
    out += "# HELP minerva_prompt_tokens_total Prompt tokens processed.\n# TYPE minerva_prompt_tokens_total counter\n";
    out += "minerva_prompt_tokens_total " + std::to_string(prompt_tokens_) + "\n";
    out += "# HELP minerva_generated_tokens_total Tokens generated.\n# TYPE minerva_generated_tokens_total counter\n";
    out += "minerva_generated_tokens_total " + std::to_string(generated_tokens_) + "\n";
    double tps = 0;
    if (!recent_.empty()) {
        auto now = std::chrono::steady_clock::now();
        int n = 0;
        for (auto& [t, k] : recent_)
            if (now - t <= std::chrono::seconds(10)) n += k;
        double span = std::chrono::duration<double>(now - recent_.front().first).count();
        tps = n / std::max(span, 1.0);
    }
    out += "# HELP minerva_generation_tokens_per_second Generated tokens per second over the last 10 s.\n"
           "# TYPE minerva_generation_tokens_per_second gauge\n";
    out += "minerva_generation_tokens_per_second " + num(tps) + "\n";
    ttft_.write(out, "minerva_time_to_first_token_seconds", "Time from request to first generated token.");
    latency_.write(out, "minerva_request_duration_seconds", "Time from request to last generated token.");
    itl_.write(out, "minerva_inter_token_latency_seconds", "Time between two tokens of one stream.");
    // the vLLM names of the same histograms, read by vLLM dashboards and autoscalers
    ttft_.write(out, "vllm:time_to_first_token_seconds", "Time to first token (vLLM name).");
    itl_.write(out, "vllm:inter_token_latency_seconds", "Time between two tokens of one stream (vLLM name).");
    extra(out);
    return out;
}

}  // namespace minerva::serve
