// metrics.h: the server's counters, gauges and histograms, written as Prometheus text.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace minerva::serve {

class Histogram {
public:
    explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}
    void observe(double v);
    void write(std::string& out, const std::string& name, const std::string& help) const;

private:
    std::vector<double> bounds_;
    std::vector<uint64_t> counts_;  // per bucket (not cumulative); last = +Inf
    double sum_ = 0;
    uint64_t count_ = 0;
};

class Metrics {
public:
    Metrics();
    void request(const std::string& route, int status);
    void tokens(int64_t prompt, int64_t generated);
    void time_to_first_token(double seconds);
    void latency(double seconds);
    void inter_token(double seconds);  // between two tokens of one stream
    // One batched decode step: how many tokens it produced and how long it took.
    void decode_step(int n_tokens, double seconds);

    // Renders everything; gauges (queue depth, slots, KV use, loaded models) come from `extra`,
    // which appends its own lines.
    std::string render(const std::function<void(std::string&)>& extra) const;

private:
    mutable std::mutex mu_;
    std::map<std::pair<std::string, int>, uint64_t> requests_;
    uint64_t prompt_tokens_ = 0, generated_tokens_ = 0;
    Histogram ttft_, latency_, itl_;
    // generation throughput over a sliding window of recent decode steps
    std::vector<std::pair<std::chrono::steady_clock::time_point, int>> recent_;
};

}  // namespace minerva::serve
