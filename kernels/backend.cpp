// Backend selection: "auto" prefers a Vulkan device and falls back to the CPU.
#include "backend.h"

#include "log/log.h"

#include <cmath>
#include <cstdlib>
#include <vector>

#include "cpu/ref_ops.h"
#include "minerva/devices.h"
#include "minerva/error.h"

namespace minerva {

void Backend::kv_shift(const Tensor& kc, const Tensor& vc, int64_t dst, int64_t src, int64_t n, int delta, int head_dim,
                       const RopeParams& p, const Tensor* freq_factors) {
    if (n <= 0) return;
    if (dst < 0 || dst >= src || src + n > kc.n_rows() || kc.n_rows() != vc.n_rows() || head_dim <= 0 ||
        kc.ne[0] % head_dim != 0 || p.n_rot <= 0 || p.n_rot > head_dim || p.n_rot % 2 != 0)
        throw Error("kv_shift: cells [" + std::to_string(src) + ", +" + std::to_string(n) + ") -> " + std::to_string(dst) +
                    " do not fit the cache of " + std::to_string(kc.n_rows()) + " cells, or bad head size");
    std::vector<float> factors;
    if (freq_factors) {
        factors.resize(static_cast<size_t>(freq_factors->n_elements()));
        read(*freq_factors, factors.data(), factors.size() * sizeof(float));
    }
    // Host copies of the moved rows (K as f32 to rotate, V as raw bytes).
    const size_t k_row = kc.row_size(), v_row = vc.row_size();
    std::vector<uint8_t> kbytes(k_row * static_cast<size_t>(n)), vbytes(v_row * static_cast<size_t>(n));
    read(kc, kbytes.data(), kbytes.size(), k_row * static_cast<size_t>(src));
    read(vc, vbytes.data(), vbytes.size(), v_row * static_cast<size_t>(src));
    Tensor kt = kc;  // the moved rows as a host tensor, for the reference's row helpers
    kt.ne[1] = n, kt.ne[2] = kt.ne[3] = 1, kt.host = kbytes.data(), kt.buffer = 0, kt.offset = 0;
    const int64_t width = kc.ne[0], half = p.n_rot / 2;
    std::vector<float> row(static_cast<size_t>(width)), cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i) {
        double theta = delta * static_cast<double>(p.freq_scale) * std::pow(static_cast<double>(p.freq_base), -2.0 * i / p.n_rot);
        if (!factors.empty()) theta /= factors[static_cast<size_t>(i)];
        cs[static_cast<size_t>(i)] = static_cast<float>(std::cos(theta));
        sn[static_cast<size_t>(i)] = static_cast<float>(std::sin(theta));
    }
    for (int64_t c = 0; c < n; ++c) {
        for (int64_t i = 0; i < width; ++i) row[static_cast<size_t>(i)] = cpu::cache_at(kt, c, i);
        for (int64_t h = 0; h < width / head_dim; ++h) {
            float* v = row.data() + h * head_dim;
            for (int64_t i = 0; i < half; ++i) {
                const int64_t i0 = p.neox ? i : 2 * i, i1 = p.neox ? i + half : 2 * i + 1;
                const float a = v[i0], b = v[i1];
                v[i0] = a * cs[static_cast<size_t>(i)] - b * sn[static_cast<size_t>(i)];
                v[i1] = a * sn[static_cast<size_t>(i)] + b * cs[static_cast<size_t>(i)];
            }
        }
        cpu::store_cache_row(kt, c, row.data());
    }
    write(kc, kbytes.data(), kbytes.size(), k_row * static_cast<size_t>(dst));
    write(vc, vbytes.data(), vbytes.size(), v_row * static_cast<size_t>(dst));
}

#ifdef MINERVA_HAVE_VULKAN
std::unique_ptr<Backend> make_vulkan_backend(const std::string& device, bool required);
#else
std::vector<DeviceInfo> list_devices() { return {}; }  // built without the Vulkan backend
#endif

std::unique_ptr<Backend> make_backend(const BackendOptions& opts) {
    std::string dev = opts.device.empty() ? "auto" : opts.device;
    if (dev == "auto")
        if (const char* env = std::getenv("MINERVA_DEVICE"); env && *env) dev = env;
    if (dev == "cpu") return make_cpu_backend(opts.n_threads);
    if (dev == "auto" || dev == "vulkan" || dev.rfind("vulkan:", 0) == 0) {
#ifdef MINERVA_HAVE_VULKAN
        if (auto b = make_vulkan_backend(dev == "auto" ? "vulkan" : dev, dev != "auto")) return b;
#else
        if (dev != "auto") throw Error("this build of minerva has no Vulkan backend (device '" + dev + "')");
#endif
        logging::info("no Vulkan GPU found: using the CPU backend (--device vulkan forces a CPU Vulkan driver such as lavapipe)");
        return make_cpu_backend(opts.n_threads);
    }
    throw Error("unknown device '" + dev + "' (expected cpu, vulkan or vulkan:N)");
}

}  // namespace minerva
