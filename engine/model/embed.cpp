// engine/model/embed.cpp: embeddings from the final hidden states: pooling as the GGUF file asks
// (`<arch>.pooling_type`) and L2 normalisation.
#include <cmath>
#include <string>

#include "minerva/error.h"
#include "minerva/gguf.h"
#include "minerva/model.h"

namespace minerva {

Pooling model_pooling(const Model& model) {
    const ModelInfo& info = model.info();
    const gguf::File f = gguf::File::open(info.path);  // a mapping: only the header is read
    const int64_t t = f.get_int(info.arch + ".pooling_type", 1);
    switch (t) {
        case 0: return Pooling::None;
        case 1: return Pooling::Mean;
        case 2: return Pooling::Cls;
        case 3: return Pooling::Last;
        default:
            throw Error(info.path + ": " + info.arch + ".pooling_type " + std::to_string(t) +
                        " is not supported (0 none, 1 mean, 2 cls, 3 last)");
    }
}

Embedding embed(Session& session, std::span<const int32_t> tokens, Pooling pooling, bool normalize, bool keep_per_token, int seq) {
    Embedding e;
    e.n_embd = session.model().info().n_embd;
    e.n_tokens = static_cast<int>(tokens.size());
    std::vector<float> h = session.hidden_states(tokens, seq);
    const size_t d = static_cast<size_t>(e.n_embd), n = tokens.size();
    if (pooling != Pooling::None) {
        e.pooled.assign(d, 0.f);
        if (pooling == Pooling::Mean) {
            std::vector<double> acc(d, 0.0);
            for (size_t t = 0; t < n; ++t)
                for (size_t i = 0; i < d; ++i) acc[i] += h[t * d + i];
            for (size_t i = 0; i < d; ++i) e.pooled[i] = static_cast<float>(acc[i] / static_cast<double>(n));
        } else {
            const size_t row = pooling == Pooling::Cls ? 0 : n - 1;
            std::copy_n(h.begin() + static_cast<ptrdiff_t>(row * d), d, e.pooled.begin());
        }
        if (normalize) {
            double ss = 0;
            for (float v : e.pooled) ss += double(v) * v;
            const double norm = std::sqrt(ss);
            if (norm > 0)
                for (float& v : e.pooled) v = static_cast<float>(v / norm);
        }
    }
    if (keep_per_token || pooling == Pooling::None) {
        if (normalize)
            for (size_t t = 0; t < n; ++t) {
                double ss = 0;
                for (size_t i = 0; i < d; ++i) ss += double(h[t * d + i]) * h[t * d + i];
                const double norm = std::sqrt(ss);
                if (norm > 0)
                    for (size_t i = 0; i < d; ++i) h[t * d + i] = static_cast<float>(h[t * d + i] / norm);
            }
        e.per_token = std::move(h);
    }
    return e;
}

}  // namespace minerva
