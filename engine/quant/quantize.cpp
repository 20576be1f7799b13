// quantize_file and the per-tensor type plan shared with synth_file.
#include "minerva/quantize.h"

#include "log/log.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <exception>
#include <functional>
#include <thread>
#include <vector>

#include "cpu/dequant.h"
#include "cpu/quantize.h"
#include "gguf/gguf_writer.h"
#include "minerva/gguf.h"
#include "quant/quant_plan.h"

namespace minerva {
namespace {

std::string upper(std::string_view s) {
    std::string u(s);
    for (char& c : u) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return u;
}

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Types a plain target may name: those the quantizers produce and the engine computes with.
bool producible(DType t) { return cpu::can_quantize(t) && dtype_supported_for_compute(t); }

// llama.cpp's rule for which layers get more bits in the _M mixes.
bool use_more_bits(int layer, int n_layer) {
    return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
}

}  // namespace

std::optional<QuantTarget> parse_quant_target(std::string_view name) {
    std::string u = upper(name);
    if (u == "Q4_K_M") return QuantTarget{u, DType::Q4_K, true};
    if (u == "Q5_K_M") return QuantTarget{u, DType::Q5_K, true};
    auto t = dtype_from_name(u);
    if (!t || !producible(*t)) return std::nullopt;
    return QuantTarget{u, *t, false};
}

std::vector<std::string> quant_target_names() {
    return {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
            "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q4_K_M", "Q5_K_M"};
}

DType tensor_type_for(const QuantTarget& target, std::string_view name, int n_dims, int layer, int n_layer,
                      bool has_output) {
    // The router's logits choose experts: llama.cpp never quantizes it.
    if (n_dims < 2 || ends_with(name, "norm.weight") || name == "rope_freqs.weight" ||
        ends_with(name, ".ffn_gate_inp.weight"))
        return DType::F32;
    if (!target.mix) return target.base;
    const bool is_output = name == "output.weight" || (!has_output && name == "token_embd.weight");
    if (is_output) return DType::Q6_K;
    if ((ends_with(name, ".attn_v.weight") || ends_with(name, ".ffn_down.weight") ||
         ends_with(name, ".ffn_down_exps.weight")) &&
        layer >= 0 && use_more_bits(layer, n_layer))
        return DType::Q6_K;
    // A fused Q/K/V projection carries V: one step up from the base, as llama.cpp's _M mixes.
    if (ends_with(name, ".attn_qkv.weight")) return target.base == DType::Q4_K ? DType::Q5_K : DType::Q6_K;
    return target.base;
}

uint32_t file_type_for(const QuantTarget& target) {
    if (target.mix) return target.base == DType::Q4_K ? 15 : 17;
    switch (target.base) {
        case DType::F32: return 0;
        case DType::F16: return 1;
        case DType::Q4_0: return 2;
        case DType::Q4_1: return 3;
        case DType::Q8_0: return 7;
        case DType::Q5_0: return 8;
        case DType::Q5_1: return 9;
        case DType::Q2_K: return 10;
        case DType::Q3_K: return 11;  // Q3_K_S: all Q3_K
        case DType::Q4_K: return 14;  // Q4_K_S
        case DType::Q5_K: return 16;  // Q5_K_S
        case DType::Q6_K: return 18;
        case DType::BF16: return 32;
        default: return 0;
    }
}

namespace detail {

int layer_of(std::string_view name) {
    if (name.substr(0, 4) != "blk.") return -1;
    size_t i = 4;
    int v = 0;
    if (i >= name.size() || !std::isdigit(static_cast<unsigned char>(name[i]))) return -1;
    while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])) && v < 1000000)
        v = v * 10 + (name[i++] - '0');
    return i < name.size() && name[i] == '.' ? v : -1;
}

DType plan_tensor_type(const QuantTarget& target, std::string_view name, int n_dims, int64_t ne0, int n_layer,
                       bool has_output) {
    DType want = tensor_type_for(target, name, n_dims, layer_of(name), n_layer, has_output);
    DType t = want;
    while (ne0 % dtype_info(t).block_elems != 0) {
        switch (t) {
            case DType::Q2_K: case DType::Q3_K: t = DType::Q4_0; break;
            case DType::Q4_K: t = DType::Q5_0; break;
            case DType::Q5_K: t = DType::Q5_1; break;
            case DType::Q6_K: t = DType::Q8_0; break;
            default: t = DType::F16; break;
        }
    }
    if (t != want)
        logging::info("{}: rows of {} elements are not a multiple of the {} block ({}): using {}", name, ne0,
                     dtype_name(want), dtype_info(want).block_elems, dtype_name(t));
    return t;
}

int resolve_threads(int n_threads) {
    if (n_threads > 0) return n_threads;
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

void parallel_ranges(int64_t n, int n_threads, const std::function<void(int64_t, int64_t)>& fn) {
    int nt = static_cast<int>(std::min<int64_t>(resolve_threads(n_threads), n));
    if (nt <= 1) {
        if (n > 0) fn(0, n);
        return;
    }
    std::vector<std::thread> pool;
    std::vector<std::exception_ptr> errors(nt);
    for (int k = 0; k < nt; ++k)
        pool.emplace_back([&, k] {
            try {
                fn(n * k / nt, n * (k + 1) / nt);
            } catch (...) {
                errors[k] = std::current_exception();
            }
        });
    for (auto& th : pool) th.join();
    for (auto& e : errors)
        if (e) std::rethrow_exception(e);
}

}  // namespace detail

namespace {

// Source rows -> f32. F32 rows are used in place; others are converted into buf.
const float* rows_as_f32(const gguf::TensorInfo& t, const uint8_t* src, int64_t n_rows, std::vector<float>& buf,
                         int n_threads) {
    const int64_t ne0 = t.ne[0];
    if (t.type == DType::F32) return reinterpret_cast<const float*>(src);
    buf.resize(static_cast<size_t>(n_rows * ne0));
    const size_t rb = row_bytes(t.type, ne0);
    detail::parallel_ranges(n_rows, n_threads, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
            cpu::dequantize_row(t.type, src + r * rb, buf.data() + r * ne0, ne0);
    });
    return buf.data();
}

}  // namespace

void quantize_file(const std::string& in_path, const std::string& out_path, std::string_view type_name,
                   int n_threads, const ProgressCallback& progress) {
    auto target = parse_quant_target(type_name);
    if (!target) {
        std::string names;
        for (auto& n : quant_target_names()) names += (names.empty() ? "" : ", ") + n;
        throw Error("unknown quantization type '" + std::string(type_name) + "' (one of: " + names + ")");
    }
    if (in_path == out_path) throw Error(out_path + ": output must not be the input file");
    n_threads = detail::resolve_threads(n_threads);
    gguf::File in = gguf::File::open(in_path);

    std::string arch(in.get_string("general.architecture", ""));
    int n_layer = static_cast<int>(in.get_int(arch + ".block_count", 0));
    if (n_layer <= 0)
        for (const auto& t : in.tensors()) n_layer = std::max(n_layer, detail::layer_of(t.name) + 1);
    const bool has_output = in.find_tensor("output.weight") != nullptr;

    gguf::Writer out(out_path);
    for (const auto& [key, value] : in.metadata()) {
        if (key == "general.file_type" || key == "general.quantization_version") continue;
        out.add_value(key, value);
    }
    out.add_u32("general.file_type", file_type_for(*target));
    out.add_u32("general.quantization_version", 2);

    std::vector<DType> types;
    for (const auto& t : in.tensors()) {
        if (!dtype_supported_for_compute(t.type))
            throw Error(in_path + ": tensor '" + t.name + "' has type " + std::string(dtype_name(t.type)) +
                        ", which cannot be converted");
        DType to = detail::plan_tensor_type(*target, t.name, static_cast<int>(t.n_dims), t.ne[0], n_layer, has_output);
        types.push_back(to);
        out.add_tensor(t.name, to, std::span<const int64_t>(t.ne, t.n_dims));
    }
    out.begin_data();

    std::vector<float> f32;
    std::vector<uint8_t> q;
    uint64_t total_bytes = 0, done_bytes = 0;
    for (const auto& t : in.tensors()) total_bytes += t.nbytes;
    auto report = [&](const gguf::TensorInfo& t) {
        done_bytes += t.nbytes;
        if (progress && !progress(total_bytes ? static_cast<float>(static_cast<double>(done_bytes) / total_bytes) : 1.f))
            throw Error(out_path + ": quantizing cancelled");
    };
    for (size_t i = 0; i < in.tensors().size(); ++i) {
        const gguf::TensorInfo& t = in.tensors()[i];
        const DType to = types[i];
        const uint8_t* src = in.tensor_data(t);
        if (t.type != DType::F32 && t.type != DType::F16 && t.type != DType::BF16 && t.type != to)
            logging::info("{}: re-quantizing from {} (quality below quantizing the original weights)", t.name,
                         dtype_name(t.type));
        logging::debug("[{}/{}] {} {} -> {}", i + 1, in.tensors().size(), t.name, dtype_name(t.type), dtype_name(to));
        if (t.type == to) {  // nothing to convert: copy the bytes
            out.write_data(src, t.nbytes);
            report(t);
            continue;
        }
        const int64_t ne0 = t.ne[0], n_rows = t.n_elements() / ne0;
        const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 22) / ne0);  // ~16 MB of f32
        const size_t in_rb = row_bytes(t.type, ne0), out_rb = row_bytes(to, ne0);
        for (int64_t r = 0; r < n_rows; r += chunk) {
            int64_t nr = std::min(chunk, n_rows - r);
            const float* x = rows_as_f32(t, src + r * in_rb, nr, f32, n_threads);
            q.resize(static_cast<size_t>(nr) * out_rb);
            try {
                cpu::quantize_rows(to, x, q.data(), nr, ne0, n_threads);
            } catch (const Error& e) {
                throw Error(in_path + ": tensor '" + t.name + "': " + e.what());
            }
            out.write_data(q.data(), q.size());
        }
        report(t);
    }
    out.finish();
}

}  // namespace minerva
