// engine/model/families.cpp: the table of model families (see families.h and
// ../shared/docs/architectures.md for the facts behind each row).
#include "model/families.h"

#include <array>

namespace minerva {

namespace {

constexpr Family make_llama() {
    Family f{"llama"};
    f.moe = Need::Optional;  // Mixtral as llama.cpp stores it: llama.expert_count > 0
    return f;
}

constexpr Family make_qwen2() {
    Family f{"qwen2"};
    f.rope = RopeStyle::Neox;
    f.qkv_bias = Need::Required;
    return f;
}

constexpr Family make_qwen3() {
    Family f{"qwen3"};
    f.rope = RopeStyle::Neox;
    f.qk_norm = Need::Required;
    return f;
}

constexpr Family make_qwen3moe() {
    Family f = make_qwen3();
    f.arch = "qwen3moe";
    f.moe = Need::Required;
    return f;
}

constexpr Family make_gemma2() {
    Family f{"gemma2"};
    f.rope = RopeStyle::Neox;
    f.act = FfnAct::GeluTanh;
    f.post_norms = true;
    f.embd_scale = true;
    f.tied_only = true;
    f.attn_softcap = 50.f;
    f.final_softcap = 30.f;
    f.swa_window = 4096;
    f.swa_pattern = 2;
    f.query_scale_embd_layers = 46;
    return f;
}

constexpr Family make_gemma3() {
    Family f{"gemma3"};
    f.rope = RopeStyle::Neox;
    f.act = FfnAct::GeluTanh;
    f.qk_norm = Need::Required;
    f.post_norms = true;
    f.embd_scale = true;
    f.swa_pattern = 6;
    f.swa_needs_key = true;
    f.swa_rope_base = 10000.f;
    f.swa_rope_unscaled = true;
    f.query_scale_embd_layers = 62;
    return f;
}

constexpr Family make_phi3() {
    Family f{"phi3"};
    f.rope = RopeStyle::Neox;
    f.fused_qkv = true;
    f.fused_gate_up = true;
    f.longrope = true;
    return f;
}

constexpr std::array kFamilies = {make_llama(), make_qwen2(), make_qwen3(), make_qwen3moe(),
                                  make_gemma2(), make_gemma3(), make_phi3()};

}  // namespace

const Family* find_family(const std::string& arch) {
    for (const Family& f : kFamilies)
        if (arch == f.arch) return &f;
    return nullptr;
}

std::span<const Family> families() { return kFamilies; }

std::string family_names() {
    std::string s;
    for (const Family& f : kFamilies) s += (s.empty() ? "" : ", ") + std::string(f.arch);
    return s;
}

}  // namespace minerva
