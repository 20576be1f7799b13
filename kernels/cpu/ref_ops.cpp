// kernels/cpu/ref_ops.cpp: scalar reference ops and the shared argument checks.
#include "cpu/ref_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/dequant.h"
#include "cpu/fp16.h"
#include "cpu/quantize.h"
#include "minerva/error.h"

namespace minerva::cpu {
namespace {

std::string shape_str(const Tensor& t) {
    return std::string(dtype_name(t.type)) + "[" + std::to_string(t.ne[0]) + ", " + std::to_string(t.ne[1]) + ", " +
           std::to_string(t.ne[2]) + ", " + std::to_string(t.ne[3]) + "]";
}

[[noreturn]] void fail(const char* op, const std::string& what) { throw Error(std::string(op) + ": " + what); }

void need_host(const char* op, const char* name, const Tensor& t) {
    if (!t.host) fail(op, std::string(name) + " has no host memory");
    for (int i = 0; i < 4; ++i)
        if (t.ne[i] < 1) fail(op, std::string(name) + " has a bad shape " + shape_str(t));
}

void need_type(const char* op, const char* name, const Tensor& t, DType want) {
    need_host(op, name, t);
    if (t.type != want)
        fail(op, std::string(name) + " must be " + std::string(dtype_name(want)) + ", got " + shape_str(t));
}

void need_compute_type(const char* op, const char* name, const Tensor& t) {
    need_host(op, name, t);
    if (!dtype_supported_for_compute(t.type))
        fail(op, std::string(name) + " has unsupported type " + std::string(dtype_name(t.type)));
    if (t.ne[0] % dtype_info(t.type).block_elems != 0)
        fail(op, std::string(name) + " row length " + std::to_string(t.ne[0]) + " is not a multiple of the " +
                     std::string(dtype_name(t.type)) + " block size");
}

void need_cache(const char* op, const char* name, const Tensor& t) {
    need_host(op, name, t);
    if (!kv_cache_type_supported(t.type))
        fail(op, std::string(name) + " must be F16, F32, Q8_0 or Q4_0, got " + shape_str(t));
    if (t.ne[0] % dtype_info(t.type).block_elems != 0)
        fail(op, std::string(name) + " row of " + std::to_string(t.ne[0]) + " is not a whole number of blocks");
}

void need_index(const char* op, const char* what, int64_t v, int64_t limit) {
    if (v < 0 || v >= limit)
        fail(op, std::string(what) + " " + std::to_string(v) + " out of range [0, " + std::to_string(limit) + ")");
}

}  // namespace

void check_get_rows(const Tensor& table, const Tensor& ids, const Tensor& out) {
    const char* op = "get_rows";
    need_compute_type(op, "table", table);
    need_type(op, "ids", ids, DType::I32);
    need_type(op, "out", out, DType::F32);
    if (out.ne[0] != table.ne[0] || out.n_rows() != ids.n_elements())
        fail(op, "out " + shape_str(out) + " does not match table " + shape_str(table) + " and " +
                     std::to_string(ids.n_elements()) + " ids");
    const int32_t* id = ids.data<int32_t>();
    for (int64_t i = 0; i < ids.n_elements(); ++i) need_index(op, "id", id[i], table.n_rows());
}

void check_rms_norm(const Tensor& x, const Tensor& w, const Tensor& out) {
    const char* op = "rms_norm";
    need_type(op, "x", x, DType::F32);
    need_type(op, "w", w, DType::F32);
    need_type(op, "out", out, DType::F32);
    if (w.n_elements() != x.ne[0]) fail(op, "w " + shape_str(w) + " does not match x " + shape_str(x));
    if (out.ne[0] != x.ne[0] || out.n_rows() != x.n_rows())
        fail(op, "out " + shape_str(out) + " does not match x " + shape_str(x));
}

void check_matmul(const Tensor& w, const Tensor& x, const Tensor& out) {
    const char* op = "matmul";
    need_compute_type(op, "w", w);
    need_type(op, "x", x, DType::F32);
    need_type(op, "out", out, DType::F32);
    if (w.ne[2] * w.ne[3] != 1) fail(op, "w must be 2-D, got " + shape_str(w));
    if (x.ne[0] != w.ne[0]) fail(op, "x " + shape_str(x) + " does not match w " + shape_str(w));
    if (out.ne[0] != w.ne[1] || out.n_rows() != x.n_rows())
        fail(op, "out " + shape_str(out) + " does not match w " + shape_str(w) + " x " + shape_str(x));
}

void check_rope(const Tensor& x, const Tensor& pos, const RopeParams& p, const Tensor* ff) {
    const char* op = "rope";
    need_type(op, "x", x, DType::F32);
    need_type(op, "pos", pos, DType::I32);
    if (p.n_rot <= 0 || p.n_rot % 2 != 0 || p.n_rot > x.ne[0])
        fail(op, "n_rot " + std::to_string(p.n_rot) + " must be even and in (0, head_dim=" + std::to_string(x.ne[0]) + "]");
    if (pos.n_elements() != x.ne[2] * x.ne[3])
        fail(op, std::to_string(pos.n_elements()) + " positions for " + std::to_string(x.ne[2] * x.ne[3]) + " tokens");
    if (ff) {
        need_type(op, "freq_factors", *ff, DType::F32);
        if (ff->n_elements() < p.n_rot / 2) fail(op, "freq_factors has fewer than n_rot/2 elements");
    }
}

void check_kv_store(const Tensor& k, const Tensor& v, const Tensor& kc, const Tensor& vc, const Tensor& rows) {
    const char* op = "kv_store";
    need_type(op, "k", k, DType::F32);
    need_type(op, "v", v, DType::F32);
    need_cache(op, "k_cache", kc);
    need_cache(op, "v_cache", vc);
    need_type(op, "rows", rows, DType::I32);
    if (k.ne[0] != kc.ne[0] || v.ne[0] != vc.ne[0] || kc.n_rows() != vc.n_rows())
        fail(op, "k " + shape_str(k) + " / v " + shape_str(v) + " do not match the caches " + shape_str(kc) + " / " + shape_str(vc));
    if (k.n_rows() != rows.n_elements() || v.n_rows() != rows.n_elements())
        fail(op, std::to_string(rows.n_elements()) + " rows for k " + shape_str(k) + " and v " + shape_str(v));
    const int32_t* r = rows.data<int32_t>();
    for (int64_t i = 0; i < rows.n_elements(); ++i) need_index(op, "cache cell", r[i], kc.n_rows());
}

void check_attention(const Tensor& q, const Tensor& kc, const Tensor& vc, const Tensor& span, const Tensor& out,
                     const AttentionParams& p) {
    const char* op = "attention";
    need_type(op, "q", q, DType::F32);
    need_cache(op, "k_cache", kc);
    need_cache(op, "v_cache", vc);
    need_type(op, "span", span, DType::I32);
    need_type(op, "out", out, DType::F32);
    if (p.n_head <= 0 || p.n_head_kv <= 0 || p.head_dim <= 0 || p.n_head % p.n_head_kv != 0)
        fail(op, "bad head counts n_head=" + std::to_string(p.n_head) + " n_head_kv=" + std::to_string(p.n_head_kv));
    if (q.ne[0] != p.head_dim || q.ne[1] != p.n_head)
        fail(op, "q " + shape_str(q) + " does not match head_dim/n_head");
    if (out.n_elements() != q.n_elements() || out.ne[0] != q.ne[0])
        fail(op, "out " + shape_str(out) + " does not match q " + shape_str(q));
    const int64_t kv_dim = static_cast<int64_t>(p.head_dim) * p.n_head_kv;
    if (kc.ne[0] != kv_dim || vc.ne[0] != kv_dim || kc.n_rows() != vc.n_rows())
        fail(op, "caches " + shape_str(kc) + " / " + shape_str(vc) + " do not match head_dim * n_head_kv");
    const int64_t n_tokens = q.ne[2] * q.ne[3];
    if (span.n_elements() != 2 * n_tokens) fail(op, "span must be I32 [2, " + std::to_string(n_tokens) + "]");
    const int32_t* s = span.data<int32_t>();
    for (int64_t t = 0; t < n_tokens; ++t) {
        const int64_t start = s[2 * t], len = s[2 * t + 1];
        if (start < 0 || len < 0 || start + len > kc.n_rows())
            fail(op, "token " + std::to_string(t) + " span [" + std::to_string(start) + ", +" + std::to_string(len) +
                         ") outside the " + std::to_string(kc.n_rows()) + " cache cells");
    }
}

void check_same_f32(const char* op, const Tensor& a, const Tensor& b) {
    need_type(op, "first operand", a, DType::F32);
    need_type(op, "second operand", b, DType::F32);
    if (a.n_elements() != b.n_elements()) fail(op, "shape mismatch " + shape_str(a) + " vs " + shape_str(b));
}

void check_gather_rows(const Tensor& x, const Tensor& rows, const Tensor& out) {
    const char* op = "gather_rows";
    need_type(op, "x", x, DType::F32);
    need_type(op, "rows", rows, DType::I32);
    need_type(op, "out", out, DType::F32);
    if (out.ne[0] != x.ne[0] || out.n_rows() != rows.n_elements())
        fail(op, "out " + shape_str(out) + " does not match x " + shape_str(x) + " and " + std::to_string(rows.n_elements()) + " rows");
    const int32_t* r = rows.data<int32_t>();
    for (int64_t i = 0; i < rows.n_elements(); ++i) need_index(op, "row", r[i], x.n_rows());
}

void check_add_bias(const Tensor& x, const Tensor& b) {
    const char* op = "add_bias";
    need_type(op, "x", x, DType::F32);
    need_type(op, "b", b, DType::F32);
    if (b.n_elements() != x.ne[0]) fail(op, "b " + shape_str(b) + " does not match x " + shape_str(x));
}

void check_softcap(const Tensor& x, float cap) {
    need_type("softcap", "x", x, DType::F32);
    if (!(cap > 0) || !std::isfinite(cap)) fail("softcap", "cap must be a positive number, got " + std::to_string(cap));
}

void check_moe_route(const Tensor& logits, const Tensor& ids, const Tensor& weights) {
    const char* op = "moe_route";
    need_type(op, "logits", logits, DType::F32);
    need_type(op, "ids", ids, DType::I32);
    need_type(op, "weights", weights, DType::F32);
    const int64_t k = ids.ne[0];
    if (k > logits.ne[0]) fail(op, "k = " + std::to_string(k) + " exceeds the " + std::to_string(logits.ne[0]) + " experts");
    if (ids.n_rows() != logits.n_rows() || weights.ne[0] != k || weights.n_rows() != logits.n_rows())
        fail(op, "ids " + shape_str(ids) + " / weights " + shape_str(weights) + " do not match logits " + shape_str(logits));
}

void check_matmul_id(const Tensor& w, const Tensor& x, const Tensor& ids, const Tensor& out) {
    const char* op = "matmul_id";
    need_compute_type(op, "w", w);
    need_type(op, "x", x, DType::F32);
    need_type(op, "ids", ids, DType::I32);
    need_type(op, "out", out, DType::F32);
    const int64_t k = ids.ne[0], n = ids.n_rows(), n_expert = w.ne[2] * w.ne[3];
    if (w.ne[3] != 1) fail(op, "w must be [n_in, m, E], got " + shape_str(w));
    if (x.ne[0] != w.ne[0]) fail(op, "x " + shape_str(x) + " does not match w " + shape_str(w));
    const bool per_slot = x.n_rows() == k * n && x.ne[1] == k;
    if (!per_slot && x.n_rows() != n) fail(op, "x " + shape_str(x) + " is neither [n_in, n] nor [n_in, k, n] for ids " + shape_str(ids));
    if (out.ne[0] != w.ne[1] || out.ne[1] != k || out.n_rows() != k * n)
        fail(op, "out " + shape_str(out) + " is not [m, k, n] for w " + shape_str(w) + " and ids " + shape_str(ids));
    const int32_t* id = ids.data<int32_t>();
    for (int64_t i = 0; i < ids.n_elements(); ++i) need_index(op, "expert id", id[i], n_expert);
}

void check_moe_sum(const Tensor& y, const Tensor& weights, const Tensor& out) {
    const char* op = "moe_sum";
    need_type(op, "y", y, DType::F32);
    need_type(op, "weights", weights, DType::F32);
    need_type(op, "out", out, DType::F32);
    const int64_t k = weights.ne[0], n = weights.n_rows();
    if (y.ne[1] != k || y.n_rows() != k * n || out.ne[0] != y.ne[0] || out.n_rows() != n)
        fail(op, "y " + shape_str(y) + " / out " + shape_str(out) + " do not match weights " + shape_str(weights));
}

float gelu_ref(float z) {
    const double x = z;
    return static_cast<float>(0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))));
}

Tensor expert_view(const Tensor& w, int64_t e) {
    Tensor v = w;
    v.ne[2] = v.ne[3] = 1;
    v.host = static_cast<char*>(w.host) + static_cast<size_t>(e) * w.row_size() * static_cast<size_t>(w.ne[1]);
    return v;
}

bool kv_cache_type_supported(DType t) {
    return t == DType::F16 || t == DType::F32 || t == DType::Q8_0 || t == DType::Q4_0;
}

float cache_at(const Tensor& c, int64_t cell, int64_t i) {
    const int64_t idx = cell * c.ne[0] + i;
    if (c.type == DType::F16) return fp16_to_f32(c.data<uint16_t>()[idx]);
    if (c.type == DType::F32) return c.data<float>()[idx];
    // Quantized rows: decode the block holding element i.
    const int64_t be = dtype_info(c.type).block_elems;
    float blk[32];
    const char* row = static_cast<const char*>(c.host) + static_cast<size_t>(cell) * c.row_size();
    dequantize_row(c.type, row + static_cast<size_t>(i / be) * dtype_info(c.type).block_bytes, blk, be);
    return blk[i % be];
}

void store_cache_row(const Tensor& cache, int64_t cell, const float* src) {
    const int64_t d = cache.ne[0];
    char* dst = static_cast<char*>(cache.host) + static_cast<size_t>(cell) * cache.row_size();
    if (cache.type == DType::F32)
        std::memcpy(dst, src, static_cast<size_t>(d) * 4);
    else if (cache.type == DType::F16)
        for (int64_t i = 0; i < d; ++i) reinterpret_cast<uint16_t*>(dst)[i] = f32_to_fp16(src[i]);
    else
        quantize_row(cache.type, src, dst, d);
}

}  // namespace minerva::cpu

namespace minerva::cpu::ref {

void get_rows(const Tensor& table, const Tensor& ids, const Tensor& out) {
    check_get_rows(table, ids, out);
    const int64_t dim = table.ne[0];
    const size_t rs = table.row_size();
    const int32_t* id = ids.data<int32_t>();
    for (int64_t i = 0; i < ids.n_elements(); ++i)
        dequantize_row(table.type, static_cast<const char*>(table.host) + rs * static_cast<size_t>(id[i]),
                       out.data<float>() + i * dim, dim);
}

void rms_norm(const Tensor& x, const Tensor& w, const Tensor& out, float eps) {
    check_rms_norm(x, w, out);
    const int64_t n = x.ne[0];
    for (int64_t r = 0; r < x.n_rows(); ++r) {
        const float* xr = x.data<float>() + r * n;
        float* o = out.data<float>() + r * n;
        double ss = 0;
        for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(xr[i]) * xr[i];
        const float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
        for (int64_t i = 0; i < n; ++i) o[i] = xr[i] * scale * w.data<float>()[i];
    }
}

void matmul(const Tensor& w, const Tensor& x, const Tensor& out) {
    check_matmul(w, x, out);
    const int64_t k = w.ne[0], m = w.ne[1], n = x.n_rows();
    std::vector<float> row(static_cast<size_t>(k));
    const size_t rs = w.row_size();
    for (int64_t i = 0; i < m; ++i) {
        dequantize_row(w.type, static_cast<const char*>(w.host) + rs * static_cast<size_t>(i), row.data(), k);
        for (int64_t j = 0; j < n; ++j) {
            const float* xj = x.data<float>() + j * k;
            double acc = 0;
            for (int64_t l = 0; l < k; ++l) acc += static_cast<double>(row[l]) * xj[l];
            out.data<float>()[j * m + i] = static_cast<float>(acc);
        }
    }
}

void rope(const Tensor& x, const Tensor& pos, const RopeParams& p, const Tensor* ff) {
    check_rope(x, pos, p, ff);
    const int64_t hd = x.ne[0], n_heads = x.ne[1], n_tokens = x.ne[2] * x.ne[3];
    for (int64_t t = 0; t < n_tokens; ++t) {
        const double ps = static_cast<double>(pos.data<int32_t>()[t]) * p.freq_scale;
        for (int64_t h = 0; h < n_heads; ++h) {
            float* v = x.data<float>() + (t * n_heads + h) * hd;
            const int half = p.n_rot / 2;
            for (int i = 0; i < half; ++i) {
                double theta = ps * std::pow(static_cast<double>(p.freq_base), -2.0 * i / p.n_rot);
                if (ff) theta /= ff->data<float>()[i];
                const double c = std::cos(theta) * p.attn_factor, s = std::sin(theta) * p.attn_factor;
                const int i0 = p.neox ? i : 2 * i, i1 = p.neox ? i + half : 2 * i + 1;
                const double a = v[i0], b = v[i1];
                v[i0] = static_cast<float>(a * c - b * s);
                v[i1] = static_cast<float>(a * s + b * c);
            }
        }
    }
}

void kv_store(const Tensor& k, const Tensor& v, const Tensor& kc, const Tensor& vc, const Tensor& rows) {
    check_kv_store(k, v, kc, vc, rows);
    for (int64_t t = 0; t < rows.n_elements(); ++t) {
        store_cache_row(kc, rows.data<int32_t>()[t], k.data<float>() + t * kc.ne[0]);
        store_cache_row(vc, rows.data<int32_t>()[t], v.data<float>() + t * vc.ne[0]);
    }
}

void attention(const Tensor& q, const Tensor& kc, const Tensor& vc, const Tensor& span, const Tensor& out,
               const AttentionParams& p) {
    check_attention(q, kc, vc, span, out, p);
    const int64_t hd = p.head_dim, n_tokens = q.ne[2] * q.ne[3];
    const int group = p.n_head / p.n_head_kv;
    std::vector<float> score;
    for (int64_t t = 0; t < n_tokens; ++t) {
        const int64_t start = span.data<int32_t>()[2 * t], len = span.data<int32_t>()[2 * t + 1];
        score.assign(static_cast<size_t>(len), 0.f);
        for (int h = 0; h < p.n_head; ++h) {
            const float* qh = q.data<float>() + (t * p.n_head + h) * hd;
            float* o = out.data<float>() + (t * p.n_head + h) * hd;
            const int64_t off = static_cast<int64_t>(h / group) * hd;  // kv head offset inside a cache row
            float mx = -INFINITY;
            for (int64_t c = 0; c < len; ++c) {
                double dot = 0;
                for (int64_t i = 0; i < hd; ++i) dot += static_cast<double>(qh[i]) * cache_at(kc, start + c, off + i);
                score[c] = static_cast<float>(dot) * p.scale;
                if (p.softcap > 0) score[c] = p.softcap * std::tanh(score[c] / p.softcap);
                mx = std::max(mx, score[c]);
            }
            float sum = 0;
            for (int64_t c = 0; c < len; ++c) {
                score[c] = std::exp(score[c] - mx);
                sum += score[c];
            }
            for (int64_t i = 0; i < hd; ++i) {
                double acc = 0;
                for (int64_t c = 0; c < len; ++c) acc += static_cast<double>(score[c]) * cache_at(vc, start + c, off + i);
                o[i] = len ? static_cast<float>(acc / sum) : 0.f;
            }
        }
    }
}

void swiglu(const Tensor& gate, const Tensor& up, const Tensor& out) {
    check_same_f32("swiglu", gate, up);
    check_same_f32("swiglu", gate, out);
    for (int64_t i = 0; i < gate.n_elements(); ++i) {
        const float g = gate.data<float>()[i];
        out.data<float>()[i] = g / (1.f + std::exp(-g)) * up.data<float>()[i];
    }
}

void geglu(const Tensor& gate, const Tensor& up, const Tensor& out) {
    check_same_f32("geglu", gate, up);
    check_same_f32("geglu", gate, out);
    for (int64_t i = 0; i < gate.n_elements(); ++i)
        out.data<float>()[i] = gelu_ref(gate.data<float>()[i]) * up.data<float>()[i];
}

void add(const Tensor& x, const Tensor& y) {
    check_same_f32("add", x, y);
    for (int64_t i = 0; i < x.n_elements(); ++i) x.data<float>()[i] += y.data<float>()[i];
}

void add_bias(const Tensor& x, const Tensor& b) {
    check_add_bias(x, b);
    const int64_t d = x.ne[0];
    for (int64_t r = 0; r < x.n_rows(); ++r)
        for (int64_t i = 0; i < d; ++i) x.data<float>()[r * d + i] += b.data<float>()[i];
}

void scale(const Tensor& x, float s) {
    need_type("scale", "x", x, DType::F32);
    for (int64_t i = 0; i < x.n_elements(); ++i) x.data<float>()[i] *= s;
}

void softcap(const Tensor& x, float cap) {
    check_softcap(x, cap);
    for (int64_t i = 0; i < x.n_elements(); ++i)
        x.data<float>()[i] = static_cast<float>(cap * std::tanh(static_cast<double>(x.data<float>()[i]) / cap));
}

void moe_route(const Tensor& logits, const Tensor& ids, const Tensor& weights) {
    check_moe_route(logits, ids, weights);
    const int64_t n_expert = logits.ne[0], k = ids.ne[0];
    std::vector<double> p(static_cast<size_t>(n_expert));
    std::vector<int32_t> order(static_cast<size_t>(n_expert));
    for (int64_t t = 0; t < logits.n_rows(); ++t) {
        const float* l = logits.data<float>() + t * n_expert;
        const double mx = *std::max_element(l, l + n_expert);
        double sum = 0;
        for (int64_t e = 0; e < n_expert; ++e) sum += p[static_cast<size_t>(e)] = std::exp(l[e] - mx);
        for (int64_t e = 0; e < n_expert; ++e) p[static_cast<size_t>(e)] /= sum, order[static_cast<size_t>(e)] = static_cast<int32_t>(e);
        std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[static_cast<size_t>(a)] > p[static_cast<size_t>(b)]; });
        double chosen = 0;
        for (int64_t j = 0; j < k; ++j) chosen += p[static_cast<size_t>(order[static_cast<size_t>(j)])];
        chosen = std::max(chosen, 6.1e-5);
        for (int64_t j = 0; j < k; ++j) {
            ids.data<int32_t>()[t * k + j] = order[static_cast<size_t>(j)];
            weights.data<float>()[t * k + j] = static_cast<float>(p[static_cast<size_t>(order[static_cast<size_t>(j)])] / chosen);
        }
    }
}

void matmul_id(const Tensor& w, const Tensor& x, const Tensor& ids, const Tensor& out) {
    check_matmul_id(w, x, ids, out);
    const int64_t k = ids.ne[0], n = ids.n_rows(), n_in = w.ne[0], m = w.ne[1];
    const bool per_slot = x.n_rows() == k * n && x.ne[1] == k;
    for (int64_t t = 0; t < n; ++t)
        for (int64_t j = 0; j < k; ++j) {
            Tensor xv = x, ov = out;
            xv.ne[1] = xv.ne[2] = xv.ne[3] = 1;
            xv.host = x.data<float>() + (per_slot ? t * k + j : t) * n_in;
            ov.ne[1] = ov.ne[2] = ov.ne[3] = 1;
            ov.host = out.data<float>() + (t * k + j) * m;
            matmul(expert_view(w, ids.data<int32_t>()[t * k + j]), xv, ov);
        }
}

void moe_sum(const Tensor& y, const Tensor& weights, const Tensor& out) {
    check_moe_sum(y, weights, out);
    const int64_t d = y.ne[0], k = weights.ne[0];
    for (int64_t t = 0; t < weights.n_rows(); ++t)
        for (int64_t i = 0; i < d; ++i) {
            double acc = 0;
            for (int64_t j = 0; j < k; ++j) acc += static_cast<double>(weights.data<float>()[t * k + j]) * y.data<float>()[(t * k + j) * d + i];
            out.data<float>()[t * d + i] = static_cast<float>(acc);
        }
}

void gather_rows(const Tensor& x, const Tensor& rows, const Tensor& out) {
    check_gather_rows(x, rows, out);
    const int64_t d = x.ne[0];
    for (int64_t i = 0; i < rows.n_elements(); ++i)
        std::memmove(out.data<float>() + i * d, x.data<float>() + rows.data<int32_t>()[i] * d, static_cast<size_t>(d) * 4);
}

}  // namespace minerva::cpu::ref
