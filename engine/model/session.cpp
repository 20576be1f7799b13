// engine/model/session.cpp: a Session owns a KV cache of n_seq sequences x n_ctx cells and the scratch
// activations for n_batch tokens, both allocated once: evaluating a token allocates nothing on
// the backend. eval() splits long inputs into n_batch chunks; eval_batch() evaluates the new
// tokens of several sequences in one forward pass (continuous batching).
#include <cmath>
#include <algorithm>
#include <cstring>
#include <string>

#include "llama.h"
#include "minerva/error.h"

namespace minerva {

struct Session::Impl {
    std::shared_ptr<Model> model_ref;
    const LlamaModel* model = nullptr;
    int n_ctx = 0, n_seq = 0, n_batch = 0, n_vocab = 0;
    KvCache kv;
    ForwardScratch scratch;
    std::vector<std::vector<int32_t>> tokens;  // [n_seq][n_past] what each sequence's cells hold
    std::vector<float> logits;                 // [n_rows * n_vocab] of the last eval()
    std::vector<float> last_logits;            // [n_seq * n_vocab]
    std::vector<char> has_last;                // [n_seq]
    ForwardBatch batch;                        // reused between passes
    std::vector<float> out_buf;                // [n_seq * n_vocab] logits of one eval_batch pass
    // eval_batch bookkeeping, kept to avoid allocating per step.
    struct Part { size_t item, first, n; };
    std::vector<Part> parts;                   // the slices of items in the current pass
    std::vector<int> out_seq;                  // the sequence of each out row of the current pass
    std::vector<size_t> start;                 // [items] n_past of each item's sequence before the call
    std::vector<char> seen;                    // [n_seq]

    void check_seq(int seq) const {
        if (seq < 0 || seq >= n_seq)
            throw Error("sequence " + std::to_string(seq) + " is out of range (the session has " +
                        std::to_string(n_seq) + ")");
    }
    void check_tokens(std::span<const int32_t> toks) const {
        for (int32_t t : toks)
            if (t < 0 || t >= n_vocab)
                throw Error("token id " + std::to_string(t) + " is out of range (n_vocab = " + std::to_string(n_vocab) + ")");
    }
    void check_room(int seq, size_t n_new) const {
        size_t n_past = tokens[static_cast<size_t>(seq)].size();
        if (n_past + n_new > static_cast<size_t>(n_ctx))
            throw Error("context overflow: sequence " + std::to_string(seq) + " holds " + std::to_string(n_past) +
                        " tokens and " + std::to_string(n_new) + " more do not fit in n_ctx = " + std::to_string(n_ctx) +
                        " (use a larger context)");
    }
    // Adds one token of seq at the next free position of that sequence to the batch.
    void push(int seq, int32_t token, int pos, bool want_logits) {
        const int32_t first = seq * n_ctx;
        batch.tokens.push_back(token);
        batch.pos.push_back(pos);
        batch.cells.push_back(first + pos);
        batch.span.push_back(first);
        batch.span.push_back(pos + 1);
        if (want_logits) batch.out_rows.push_back(static_cast<int32_t>(batch.tokens.size() - 1));
    }
    void clear_batch() {
        batch.tokens.clear(), batch.pos.clear(), batch.cells.clear(), batch.span.clear(), batch.out_rows.clear();
    }
    // hidden_out (optional): the final-normed hidden states of the batch's tokens, [n_embd, n].
    void run(float* logits_out, float* hidden_out = nullptr) {
        std::lock_guard lock(model->forward_mutex());  // Sessions of one Model take turns (model.h)
        forward(*model, kv, scratch, batch, logits_out, hidden_out);
    }
};

Session::Session(std::shared_ptr<Model> model, const SessionOptions& opts) : impl_(std::make_unique<Impl>()) {
    Impl& s = *impl_;
    if (!model) throw Error("Session: no model");
    s.model_ref = model;
    s.model = dynamic_cast<const LlamaModel*>(model.get());
    if (!s.model) throw Error("Session: the model was not loaded by Model::load");
    const ModelInfo& h = s.model->info();
    s.n_ctx = opts.n_ctx > 0 ? opts.n_ctx : std::min(h.n_ctx_train, 4096);
    s.n_seq = opts.n_seq;
    s.n_batch = opts.n_batch;
    s.n_vocab = h.n_vocab;
    if (opts.n_ctx < 0 || s.n_ctx > (1 << 24)) throw Error("n_ctx " + std::to_string(opts.n_ctx) + " is out of range");
    if (s.n_seq < 1 || s.n_seq > 4096) throw Error("n_seq " + std::to_string(s.n_seq) + " is out of range (1..4096)");
    if (s.n_batch < 1) throw Error("n_batch must be at least 1");
    if (int64_t(s.n_ctx) * s.n_seq > (int64_t(1) << 31) - 1) throw Error("n_ctx * n_seq is too large");
    // Larger batches than the cache can hold would only waste scratch memory.
    s.n_batch = static_cast<int>(std::min<int64_t>(s.n_batch, int64_t(s.n_ctx) * s.n_seq));
    // Logit rows per output matmul: every sequence's last token in one pass; all-token logits
    // (perplexity) in chunks of 8 rows, which bounds the [n_vocab, rows] scratch (4 MB at a
    // 128k vocabulary) at little cost in matmul efficiency.
    const int n_out_max = std::min(s.n_batch, std::max(s.n_seq, 8));
    s.kv = alloc_kv_cache(*s.model, s.n_ctx, s.n_seq, opts.kv_type_k, opts.kv_type_v);
    s.scratch = alloc_scratch(*s.model, s.n_batch, n_out_max);
    s.tokens.resize(static_cast<size_t>(s.n_seq));
    s.last_logits.assign(static_cast<size_t>(s.n_seq) * s.n_vocab, 0.f);
    s.has_last.assign(static_cast<size_t>(s.n_seq), 0);
    s.out_buf.resize(static_cast<size_t>(s.n_seq) * s.n_vocab);
    s.batch.tokens.reserve(static_cast<size_t>(s.n_batch));
}

Session::~Session() = default;

const Model& Session::model() const { return *impl_->model; }
int Session::n_ctx() const { return impl_->n_ctx; }
int Session::n_seq() const { return impl_->n_seq; }
int Session::n_vocab() const { return impl_->n_vocab; }

int Session::n_past(int seq) const {
    impl_->check_seq(seq);
    return static_cast<int>(impl_->tokens[static_cast<size_t>(seq)].size());
}

std::span<const int32_t> Session::tokens(int seq) const {
    impl_->check_seq(seq);
    return impl_->tokens[static_cast<size_t>(seq)];
}

std::span<const float> Session::eval(std::span<const int32_t> toks, int seq, bool all_logits) {
    Impl& s = *impl_;
    s.check_seq(seq);
    if (toks.empty()) throw Error("eval: no tokens");
    s.check_tokens(toks);
    s.check_room(seq, toks.size());

    std::vector<int32_t>& held = s.tokens[static_cast<size_t>(seq)];
    const size_t nv = static_cast<size_t>(s.n_vocab);
    s.logits.resize((all_logits ? toks.size() : 1) * nv);
    for (size_t first = 0; first < toks.size(); first += static_cast<size_t>(s.n_batch)) {
        const size_t n = std::min(toks.size() - first, static_cast<size_t>(s.n_batch));
        const bool last_chunk = first + n == toks.size();
        s.clear_batch();
        for (size_t i = 0; i < n; ++i) {
            const bool want = all_logits || (last_chunk && i + 1 == n);
            s.push(seq, toks[first + i], static_cast<int>(held.size() + i), want);
        }
        s.run(s.batch.out_rows.empty() ? nullptr : s.logits.data() + (all_logits ? first * nv : 0));
        held.insert(held.end(), toks.begin() + static_cast<ptrdiff_t>(first),
                    toks.begin() + static_cast<ptrdiff_t>(first + n));
    }
    const float* last = s.logits.data() + s.logits.size() - nv;
    std::memcpy(s.last_logits.data() + static_cast<size_t>(seq) * nv, last, nv * sizeof(float));
    s.has_last[static_cast<size_t>(seq)] = 1;
    return {last, nv};
}

std::vector<float> Session::hidden_states(std::span<const int32_t> toks, int seq) {
    Impl& s = *impl_;
    s.check_seq(seq);
    if (toks.empty()) throw Error("hidden_states: no tokens");
    s.check_tokens(toks);
    if (toks.size() > static_cast<size_t>(s.n_ctx))
        throw Error("hidden_states: " + std::to_string(toks.size()) + " tokens do not fit in n_ctx = " + std::to_string(s.n_ctx));
    const size_t n_embd = static_cast<size_t>(s.model->info().n_embd);
    std::vector<float> out(toks.size() * n_embd);
    clear(seq);
    try {
        for (size_t first = 0; first < toks.size(); first += static_cast<size_t>(s.n_batch)) {
            const size_t n = std::min(toks.size() - first, static_cast<size_t>(s.n_batch));
            s.clear_batch();
            for (size_t i = 0; i < n; ++i) s.push(seq, toks[first + i], static_cast<int>(first + i), false);
            s.run(nullptr, out.data() + first * n_embd);
            s.tokens[static_cast<size_t>(seq)].insert(s.tokens[static_cast<size_t>(seq)].end(), toks.begin() + static_cast<ptrdiff_t>(first),
                                                      toks.begin() + static_cast<ptrdiff_t>(first + n));
        }
    } catch (...) {
        clear(seq);
        throw;
    }
    clear(seq);  // the cells hold no generation state worth keeping
    return out;
}

void Session::eval_batch(std::span<const BatchItem> items) {
    Impl& s = *impl_;
    // Check everything first so that an Error leaves every sequence as it was.
    std::vector<char>& seen = s.seen;
    seen.assign(static_cast<size_t>(s.n_seq), 0);
    size_t total = 0;
    for (const BatchItem& it : items) {
        if (it.tokens.empty()) continue;
        s.check_seq(it.seq);
        if (seen[static_cast<size_t>(it.seq)]++)
            throw Error("eval_batch: sequence " + std::to_string(it.seq) + " appears more than once");
        s.check_tokens(it.tokens);
        s.check_room(it.seq, it.tokens.size());
        total += it.tokens.size();
    }
    if (total == 0) return;

    const size_t nv = static_cast<size_t>(s.n_vocab);
    // Flatten into (item, index) pairs and run them n_batch at a time. Each item's tokens are
    // appended to its sequence after the pass that evaluated them.
    std::vector<int>& out_seq = s.out_seq;
    std::vector<size_t>& start = s.start;
    start.assign(items.size(), 0);
    for (size_t i = 0; i < items.size(); ++i)
        if (!items[i].tokens.empty()) start[i] = s.tokens[static_cast<size_t>(items[i].seq)].size();
    size_t item_i = 0, tok_i = 0;
    while (item_i < items.size()) {
        s.clear_batch();
        out_seq.clear();
        auto& parts = s.parts;
        parts.clear();
        while (item_i < items.size() && s.batch.tokens.size() < static_cast<size_t>(s.n_batch)) {
            const BatchItem& it = items[item_i];
            if (tok_i >= it.tokens.size()) { ++item_i, tok_i = 0; continue; }
            const size_t room = static_cast<size_t>(s.n_batch) - s.batch.tokens.size();
            const size_t n = std::min(room, it.tokens.size() - tok_i);
            const int base = static_cast<int>(start[item_i] + tok_i);
            for (size_t j = 0; j < n; ++j) {
                const bool want = tok_i + j + 1 == it.tokens.size();
                s.push(it.seq, it.tokens[tok_i + j], base + static_cast<int>(j), want);
                if (want) out_seq.push_back(it.seq);
            }
            parts.push_back({item_i, tok_i, n});
            tok_i += n;
        }
        if (s.batch.tokens.empty()) break;
        s.run(out_seq.empty() ? nullptr : s.out_buf.data());
        for (size_t r = 0; r < out_seq.size(); ++r) {
            std::memcpy(s.last_logits.data() + static_cast<size_t>(out_seq[r]) * nv, s.out_buf.data() + r * nv,
                        nv * sizeof(float));
            s.has_last[static_cast<size_t>(out_seq[r])] = 1;
        }
        for (const Impl::Part& p : parts) {
            const BatchItem& it = items[p.item];
            auto& held = s.tokens[static_cast<size_t>(it.seq)];
            held.insert(held.end(), it.tokens.begin() + static_cast<ptrdiff_t>(p.first),
                        it.tokens.begin() + static_cast<ptrdiff_t>(p.first + p.n));
        }
    }
}

std::span<const float> Session::logits() const { return impl_->logits; }

std::span<const float> Session::last_logits(int seq) const {
    impl_->check_seq(seq);
    if (!impl_->has_last[static_cast<size_t>(seq)])
        throw Error("last_logits: sequence " + std::to_string(seq) + " has no evaluated token");
    const size_t nv = static_cast<size_t>(impl_->n_vocab);
    return {impl_->last_logits.data() + static_cast<size_t>(seq) * nv, nv};
}

void Session::truncate(int seq, int n_keep) {
    Impl& s = *impl_;
    s.check_seq(seq);
    if (n_keep < 0) throw Error("truncate: n_keep must not be negative");
    auto& held = s.tokens[static_cast<size_t>(seq)];
    if (static_cast<size_t>(n_keep) < held.size()) {
        held.resize(static_cast<size_t>(n_keep));
        // The logits of the last token are gone with it.
        s.has_last[static_cast<size_t>(seq)] = 0;
    }
}

void Session::shift(int seq, int n_keep, int n_discard) {
    Impl& s = *impl_;
    s.check_seq(seq);
    auto& held = s.tokens[static_cast<size_t>(seq)];
    const int n_past = static_cast<int>(held.size());
    if (n_keep < 0 || n_discard < 0 || n_keep + n_discard > n_past)
        throw Error("shift: keeping " + std::to_string(n_keep) + " and dropping " + std::to_string(n_discard) +
                    " tokens does not fit sequence " + std::to_string(seq) + " of " + std::to_string(n_past));
    if (n_discard == 0) return;
    shift_kv_cache(*s.model, s.kv, int64_t(seq) * s.n_ctx, n_keep, n_discard, n_past);
    held.erase(held.begin() + n_keep, held.begin() + n_keep + n_discard);
}

int Session::reuse_prefix(int seq, std::span<const int32_t> prompt) {
    impl_->check_seq(seq);
    if (prompt.empty()) {
        truncate(seq, 0);
        return 0;
    }
    const std::vector<int32_t>& cached = impl_->tokens[static_cast<size_t>(seq)];
    size_t common = 0;
    while (common < cached.size() && common < prompt.size() && cached[common] == prompt[common]) ++common;
    // A dropped middle: find where the cache continues with prompt[common..].
    if (common < prompt.size() && common < cached.size()) {
        size_t best_len = 0, best_gap = 0;
        for (size_t gap = 1; common + gap < cached.size(); ++gap) {
            size_t len = 0;
            while (common + gap + len < cached.size() && common + len < prompt.size() && cached[common + gap + len] == prompt[common + len])
                ++len;
            if (len > best_len) best_len = len, best_gap = gap;
            if (len > 0 && common + gap + len == cached.size()) break;  // the run reaches the cache's end
        }
        if (best_len >= 16) {  // worth a shift; shorter runs are evaluated again
            truncate(seq, static_cast<int>(common + best_gap + best_len));
            shift(seq, static_cast<int>(common), static_cast<int>(best_gap));
            common += best_len;
        }
    }
    common = std::min(common, prompt.size() - 1);
    truncate(seq, static_cast<int>(common));
    return static_cast<int>(common);
}

void Session::clear(int seq) { truncate(seq, 0); }

void Session::clear() {
    for (int i = 0; i < impl_->n_seq; ++i) truncate(i, 0);
}

size_t Session::kv_bytes_per_token() const {
    size_t b = 0;
    for (const Tensor& t : impl_->kv.k) b += t.row_size();
    for (const Tensor& t : impl_->kv.v) b += t.row_size();
    return b;
}

const char* kv_type_name(KvType t) {
    switch (t) {
        case KvType::F16: return "f16";
        case KvType::F32: return "f32";
        case KvType::Q8_0: return "q8_0";
        case KvType::Q4_0: return "q4_0";
    }
    return "?";
}

KvType parse_kv_type(std::string_view name) {
    for (KvType t : {KvType::F16, KvType::F32, KvType::Q8_0, KvType::Q4_0})
        if (name == kv_type_name(t)) return t;
    throw Error("unknown KV cache type '" + std::string(name) + "' (use f16, f32, q8_0 or q4_0)");
}

size_t Session::kv_bytes() const {
    size_t b = 0;
    for (const Tensor& t : impl_->kv.k) b += t.nbytes();
    for (const Tensor& t : impl_->kv.v) b += t.nbytes();
    return b;
}

}  // namespace minerva
