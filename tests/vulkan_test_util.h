// tests/vulkan_test_util.h: what the Vulkan op tests share: one backend per program (pipeline
// compilation is slow on lavapipe), VK_OR_SKIP (SKIPPED without a device, FAILED under
// MINERVA_REQUIRE_VULKAN=1), host tensors for the CPU reference, device copies and the
// normalised error ||a - b|| / ||b||.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend.h"
#include "minerva/error.h"
#include "vulkan/vk_backend.h"

namespace minerva {
std::unique_ptr<Backend> make_vulkan_backend(const std::string& device, bool required);
}

namespace vk_test {

using namespace minerva;

inline bool require_vulkan() {
    const char* r = std::getenv("MINERVA_REQUIRE_VULKAN");
    return r && std::string(r) == "1";
}

// One backend for the whole program: pipeline compilation is slow on lavapipe.
inline vk::VulkanBackend* vk_backend() {
    static std::unique_ptr<Backend> b;
    static std::string error;
    static bool tried = false;
    if (!tried) {
        tried = true;
        try {
            b = make_vulkan_backend("vulkan", true);
        } catch (const Error& e) {
            error = e.what();
        }
    }
    if (!b && require_vulkan()) ADD_FAILURE() << "MINERVA_REQUIRE_VULKAN=1 but no Vulkan backend: " << error;
    return static_cast<vk::VulkanBackend*>(b.get());
}

#define VK_OR_SKIP(var)                                                                   \
    vk::VulkanBackend* var = vk_backend();                                                \
    if (!var) {                                                                           \
        if (require_vulkan()) return;                                                     \
        GTEST_SKIP() << "no Vulkan device (set MINERVA_REQUIRE_VULKAN=1 to fail instead)"; \
    }

// A host tensor for the reference.
struct Host {
    std::vector<uint8_t> bytes;
    Tensor t;
    Host(DType type, std::initializer_list<int64_t> ne) {
        t.type = type;
        int i = 0;
        for (int64_t v : ne) t.ne[i++] = v;
        bytes.assign(t.nbytes() + 16, 0);
        t.host = bytes.data();
    }
    float* f() const { return t.data<float>(); }
    int32_t* i32() const { return t.data<int32_t>(); }
};

// The device copy of a host tensor (activations through alloc+write, weights through upload).
inline Tensor to_device(vk::VulkanBackend* vk, const Host& h, bool weight = false) {
    if (weight) return vk->upload_weight(h.t.type, h.t.ne, h.t.host, "test weight");
    Tensor d = vk->alloc(h.t.type, h.t.ne);
    vk->write(d, h.t.host, h.t.nbytes());
    return d;
}

inline std::vector<float> from_device(vk::VulkanBackend* vk, const Tensor& d) {
    std::vector<float> v(d.n_elements());
    vk->read(d, v.data(), d.nbytes());
    return v;
}

// ||a - b|| / ||b||
inline double nerr(const float* a, const float* b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; ++i) {
        if (!std::isfinite(a[i])) return INFINITY;
        num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
        den += double(b[i]) * b[i];
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

inline void fill_normal(const Host& h, std::mt19937& rng, float sd = 1.f) {
    std::normal_distribution<float> nd(0.f, sd);
    for (int64_t i = 0; i < h.t.n_elements(); ++i) h.f()[i] = nd(rng);
}

}  // namespace vk_test
