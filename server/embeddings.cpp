// embeddings.cpp: POST /v1/embeddings. Each input becomes one embedding job on the model's
// scheduler (which owns the Session), pooled as the GGUF file says (mean when it says none)
// and L2-normalised.
#include "embeddings.h"

#include <cstring>

#include "minerva/error.h"
#include "request.h"

namespace minerva::serve {

using json = nlohmann::json;

namespace {

std::string base64(const void* data, size_t n) {
    static const char* tab = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const auto* p = static_cast<const unsigned char*>(data);
    std::string out;
    out.reserve((n + 2) / 3 * 4);
    for (size_t i = 0; i < n; i += 3) {
        const uint32_t v = (uint32_t(p[i]) << 16) | (i + 1 < n ? uint32_t(p[i + 1]) << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        out += tab[(v >> 18) & 63];
        out += tab[(v >> 12) & 63];
        out += i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out += i + 2 < n ? tab[v & 63] : '=';
    }
    return out;
}

}  // namespace

json create_embeddings(const json& body, LoadedModel& lm, int& prompt_tokens) {
    for (auto& [k, v] : body.items())
        if (k != "model" && k != "input" && k != "encoding_format" && k != "dimensions" && k != "user")
            throw ApiError(400, "'" + k + "' is not a parameter of /v1/embeddings", k, "unsupported_parameter");
    const Vocab& vocab = *lm.model->vocab();
    const int n_embd = lm.model->info().n_embd;
    const int n_ctx = lm.scheduler->n_ctx();

    std::string format = "float";
    if (auto it = body.find("encoding_format"); it != body.end() && !it->is_null()) {
        if (!it->is_string() || (*it != "float" && *it != "base64"))
            throw ApiError(400, "'encoding_format' must be 'float' or 'base64'", "encoding_format", "invalid_value");
        format = it->get<std::string>();
    }
    if (auto d = get_int(body, "dimensions", 1, 1 << 20); d && *d != n_embd)
        throw ApiError(400, "'dimensions' must be " + std::to_string(n_embd) + " for this model (its embeddings are not truncatable)",
                       "dimensions", "invalid_value");
    if (auto it = body.find("user"); it != body.end() && !it->is_null() && !it->is_string())
        throw ApiError(400, "'user' must be a string", "user", "invalid_type");

    auto it = body.find("input");
    if (it == body.end() || it->is_null()) throw ApiError(400, "'input' is required", "input", "missing_required_parameter");
    const json& input = *it;
    std::vector<const json*> items;
    if (input.is_string() || (input.is_array() && !input.empty() && input[0].is_number())) items.push_back(&input);
    else if (input.is_array() && !input.empty())
        for (auto& x : input) items.push_back(&x);
    else throw ApiError(400, "'input' must be a string, an array of strings, an array of token ids or an array of those", "input", "invalid_type");
    if (items.size() > 2048) throw ApiError(400, "'input' holds more than 2048 inputs", "input", "invalid_value");

    Pooling pooling;
    try {
        pooling = model_pooling(*lm.model);
    } catch (const Error& e) {
        throw ApiError(400, std::string("this model cannot give embeddings: ") + e.what(), "model", "invalid_value");
    }
    if (pooling == Pooling::None) pooling = Pooling::Mean;  // one vector per input, as the API promises

    std::vector<std::shared_ptr<Job>> jobs;
    for (size_t i = 0; i < items.size(); ++i) {
        const json& x = *items[i];
        const std::string param = items.size() == 1 && items[0] == &input ? "input" : "input[" + std::to_string(i) + "]";
        std::vector<int32_t> ids;
        if (x.is_string()) {
            ids = vocab.tokenize(x.get<std::string>(), true, false);
        } else if (x.is_array()) {
            for (auto& t : x) {
                if (!t.is_number_integer() || !vocab.valid(t.get<int32_t>()))
                    throw ApiError(400, "'" + param + "' holds a value that is not a token id of this model", param, "invalid_value");
                ids.push_back(t.get<int32_t>());
            }
        } else {
            throw ApiError(400, "'" + param + "' must be a string or an array of token ids", param, "invalid_type");
        }
        if (ids.empty()) throw ApiError(400, "'" + param + "' gives no tokens", param, "invalid_value");
        if (static_cast<int>(ids.size()) > n_ctx)
            throw ApiError(400, "'" + param + "' has " + std::to_string(ids.size()) + " tokens; this model's context is " + std::to_string(n_ctx),
                           param, "context_length_exceeded");
        auto j = std::make_shared<Job>();
        j->prompt = std::move(ids);
        j->embed = true;
        j->pooling = pooling;
        jobs.push_back(j);
    }
    // In batches the queue can hold.
    json data = json::array();
    prompt_tokens = 0;
    for (size_t first = 0; first < jobs.size(); first += 32) {
        std::vector<std::shared_ptr<Job>> part(jobs.begin() + static_cast<ptrdiff_t>(first),
                                               jobs.begin() + static_cast<ptrdiff_t>(std::min(jobs.size(), first + 32)));
        if (!lm.scheduler->submit(part))
            throw ApiError(429, "The server is busy: the request queue of model '" + lm.id + "' is full; retry later", "", "queue_full");
        for (auto& j : part) {
            std::unique_lock lock(j->mu);
            j->cv.wait(lock, [&] { return j->done; });
            if (j->finish_reason != "stop") throw ApiError(500, "embedding failed: " + (j->error.empty() ? j->finish_reason : j->error));
            prompt_tokens += j->n_prompt;
            json e = {{"object", "embedding"}, {"index", data.size()}};
            if (format == "base64") e["embedding"] = base64(j->embedding.data(), j->embedding.size() * sizeof(float));
            else e["embedding"] = j->embedding;
            data.push_back(std::move(e));
        }
    }
    return json{{"object", "list"}, {"data", data}, {"model", lm.id}, {"usage", {{"prompt_tokens", prompt_tokens}, {"total_tokens", prompt_tokens}}}};
}

}  // namespace minerva::serve
