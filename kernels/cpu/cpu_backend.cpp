// kernels/cpu/cpu_backend.cpp: the CPU implementation of Backend. Weights are used in place
// (the model's mmap); activations, scratch and KV memory are 64-byte aligned host allocations.
// Ops run at once on the calling thread plus the pool's workers (see fast_ops.h).
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "cpu/cpu_features.h"
#include "cpu/fast_ops.h"
#include "cpu/ref_ops.h"
#include "minerva/error.h"

namespace minerva {
namespace {

struct AlignedFree {
    void operator()(void* p) const { std::free(p); }
};

class CpuBackend final : public Backend {
public:
    explicit CpuBackend(int n_threads) : ctx_(n_threads) {}

    std::string name() const override {
        const cpu::Features& f = cpu::features();
        const std::string isa = std::string(f.avx512 ? "AVX-512" : "AVX2") + (f.amx ? " + AMX" : f.amx_emulated ? " + AMX (emulated)" : "");
        return "cpu (" + isa + ", " + std::to_string(ctx_.n_threads()) +
               (ctx_.n_threads() == 1 ? " thread)" : " threads)");
    }

    Tensor upload_weight(DType type, const int64_t ne[4], const void* data, const std::string& name) override {
        if (!data) throw Error("upload_weight: tensor '" + name + "' has no data");
        Tensor t = make(type, ne, name.c_str());
        t.host = const_cast<void*>(data);  // read-only use: ops never write weights
        return t;
    }

    bool supports_kv_type(DType t) const override { return cpu::kv_cache_type_supported(t); }

    Tensor alloc(DType type, const int64_t ne[4]) override {
        Tensor t = make(type, ne, "alloc");
        const size_t bytes = (t.nbytes() + 63) / 64 * 64;
        void* p = std::aligned_alloc(64, bytes ? bytes : 64);
        if (!p) throw Error("alloc: out of memory for " + std::to_string(bytes) + " bytes");
        std::memset(p, 0, bytes);
        blocks_.emplace_back(p);
        t.host = p;
        return t;
    }

    void write(const Tensor& t, const void* src, size_t bytes, size_t offset) override {
        check_range("write", t, bytes, offset);
        std::memcpy(static_cast<char*>(t.host) + offset, src, bytes);
    }

    void read(const Tensor& t, void* dst, size_t bytes, size_t offset) override {
        check_range("read", t, bytes, offset);
        std::memcpy(dst, static_cast<const char*>(t.host) + offset, bytes);
    }

    void get_rows(const Tensor& table, const Tensor& ids, const Tensor& out) override { cpu::fast::get_rows(ctx_, table, ids, out); }
    void rms_norm(const Tensor& x, const Tensor& w, const Tensor& out, float eps) override { cpu::fast::rms_norm(ctx_, x, w, out, eps); }
    void matmul(const Tensor& w, const Tensor& x, const Tensor& out) override { cpu::fast::matmul(ctx_, w, x, out); }
    void rope(const Tensor& x, const Tensor& pos, const RopeParams& p, const Tensor* ff) override { cpu::fast::rope(ctx_, x, pos, p, ff); }
    void kv_store(const Tensor& k, const Tensor& v, const Tensor& kc, const Tensor& vc, const Tensor& rows) override {
        cpu::fast::kv_store(ctx_, k, v, kc, vc, rows);
    }
    void attention(const Tensor& q, const Tensor& kc, const Tensor& vc, const Tensor& span, const Tensor& out,
                   const AttentionParams& p) override {
        cpu::fast::attention(ctx_, q, kc, vc, span, out, p);
    }
    void swiglu(const Tensor& gate, const Tensor& up, const Tensor& out) override { cpu::fast::swiglu(ctx_, gate, up, out); }
    void geglu(const Tensor& gate, const Tensor& up, const Tensor& out) override { cpu::fast::geglu(ctx_, gate, up, out); }
    void add(const Tensor& x, const Tensor& y) override { cpu::fast::add(ctx_, x, y); }
    void add_bias(const Tensor& x, const Tensor& b) override { cpu::fast::add_bias(ctx_, x, b); }
    void scale(const Tensor& x, float s) override { cpu::fast::scale(ctx_, x, s); }
    void softcap(const Tensor& x, float cap) override { cpu::fast::softcap(ctx_, x, cap); }
    void moe_route(const Tensor& logits, const Tensor& ids, const Tensor& weights) override {
        cpu::fast::moe_route(ctx_, logits, ids, weights);
    }
    void matmul_id(const Tensor& w, const Tensor& x, const Tensor& ids, const Tensor& out) override {
        cpu::fast::matmul_id(ctx_, w, x, ids, out);
    }
    void moe_sum(const Tensor& y, const Tensor& weights, const Tensor& out) override { cpu::fast::moe_sum(ctx_, y, weights, out); }
    void gather_rows(const Tensor& x, const Tensor& rows, const Tensor& out) override { cpu::fast::gather_rows(ctx_, x, rows, out); }

    void submit() override {}
    void sync() override {}

private:
    static Tensor make(DType type, const int64_t ne[4], const char* what) {
        Tensor t;
        t.type = type;
        for (int i = 0; i < 4; ++i) {
            if (ne[i] < 1) throw Error(std::string(what) + ": dimension " + std::to_string(i) + " is " + std::to_string(ne[i]));
            t.ne[i] = ne[i];
        }
        if (ne[0] % dtype_info(type).block_elems != 0)
            throw Error(std::string(what) + ": row length " + std::to_string(ne[0]) + " is not a multiple of the " +
                        std::string(dtype_name(type)) + " block size");
        return t;
    }

    static void check_range(const char* op, const Tensor& t, size_t bytes, size_t offset) {
        if (!t.host) throw Error(std::string(op) + ": tensor has no host memory");
        if (offset > t.nbytes() || bytes > t.nbytes() - offset)
            throw Error(std::string(op) + ": " + std::to_string(bytes) + " bytes at offset " + std::to_string(offset) +
                        " exceed the tensor's " + std::to_string(t.nbytes()) + " bytes");
    }

    cpu::fast::Context ctx_;
    std::vector<std::unique_ptr<void, AlignedFree>> blocks_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int n_threads) { return std::make_unique<CpuBackend>(n_threads); }

}  // namespace minerva
