// kernels/vulkan/vk_backend.h: the Vulkan implementation of Backend.
//
// Memory: weights live in device-local buffers, packed (sub-allocated) into chunks no larger
// than the device's storage-buffer range and uploaded once through a staging buffer in their
// file format. Activations, KV cache and scratch come from a second, zero-filled arena.
// Recording: ops are recorded into the current frame's command buffer with a barrier only where
// a dispatch touches memory an earlier un-barriered one wrote (or read, for writes); submit()
// ends and submits it; read()/sync() wait. Two frames alternate so the host can record step N+1
// while the device runs step N. Small host->device writes (token ids, positions) go through a
// per-frame staging ring recorded in order with the dispatches.
#pragma once
#include <vulkan/vulkan.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "vulkan/vk_context.h"
#include "vulkan/vk_pipelines.h"

namespace minerva::vk {

// Per-variant GPU time collected from timestamp queries while profiling is on.
struct KernelTiming {
    uint64_t dispatches = 0;
    double total_ns = 0;
};

class VulkanBackend final : public Backend {
public:
    explicit VulkanBackend(std::unique_ptr<Context> ctx);
    ~VulkanBackend() override;

    std::string name() const override;
    Tensor upload_weight(DType type, const int64_t ne[4], const void* data, const std::string& name) override;
    Tensor alloc(DType type, const int64_t ne[4]) override;
    void write(const Tensor& t, const void* src, size_t bytes, size_t offset = 0) override;
    void read(const Tensor& t, void* dst, size_t bytes, size_t offset = 0) override;

    void get_rows(const Tensor& table, const Tensor& ids, const Tensor& out) override;
    void rms_norm(const Tensor& x, const Tensor& w, const Tensor& out, float eps) override;
    void matmul(const Tensor& w, const Tensor& x, const Tensor& out) override;
    void rope(const Tensor& x, const Tensor& pos, const RopeParams& p, const Tensor* freq_factors) override;
    // F32, F16, Q8_0 and Q4_0 caches, K and V independently (kv_store.comp, attention.comp).
    bool supports_kv_type(DType t) const override {
        return t == DType::F32 || t == DType::F16 || t == DType::Q8_0 || t == DType::Q4_0;
    }
    void kv_store(const Tensor& k, const Tensor& v, const Tensor& k_cache, const Tensor& v_cache,
                  const Tensor& rows) override;
    void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& span,
                   const Tensor& out, const AttentionParams& p) override;
    void swiglu(const Tensor& gate, const Tensor& up, const Tensor& out) override;
    void geglu(const Tensor& gate, const Tensor& up, const Tensor& out) override;
    void add(const Tensor& x, const Tensor& y) override;
    void add_bias(const Tensor& x, const Tensor& b) override;
    void scale(const Tensor& x, float s) override;
    void softcap(const Tensor& x, float cap) override;
    void moe_route(const Tensor& logits, const Tensor& ids, const Tensor& weights) override;
    void matmul_id(const Tensor& w, const Tensor& x, const Tensor& ids, const Tensor& out) override;
    void moe_sum(const Tensor& y, const Tensor& weights, const Tensor& out) override;
    void gather_rows(const Tensor& x, const Tensor& rows, const Tensor& out) override;

    void submit() override;
    void sync() override;

    // ---- beyond the Backend interface (bench, tests, model loading) ----
    // Declares the total bytes of weights about to be uploaded: a model that cannot fit the
    // device-local memory is an Error here, before any upload; also drives the progress log.
    void plan_weights(uint64_t total_bytes) override;
    // Timestamp every dispatch; timings() accumulates per shader variant after each sync.
    void set_profiling(bool on);
    bool can_profile() const { return ctx_->phys.timestamps; }
    const std::map<std::string, KernelTiming>& timings() const { return timings_; }
    void clear_timings() { timings_.clear(); }
    const Context& context() const { return *ctx_; }
    // Device memory bandwidth: a buffer-to-buffer copy of `bytes` timed by timestamps, best of
    // `reps`; counts bytes read + written. For the benchmark's reference line.
    double measure_copy_bandwidth(uint64_t bytes, int reps);
    // Forces the attention split count for decode (0 = automatic); for tests.
    void set_attention_split(uint32_t n) { forced_split_ = n; }
    // Disables the subgroup variants (tests the shared-memory fallback on devices that have them).
    void set_use_subgroups(bool on) { use_subgroups_ = on && ctx_->phys.subgroup_arithmetic; }
    // Kernel shapes for CPU-type devices (row-per-invocation matvec/matmul); on by default exactly
    // for CPU devices. Tests turn it off to cover the GPU shapes.
    void set_cpu_shapes(bool on) { cpu_shapes_ = on; }
    // matmul_id of a batch (n > 1 tokens) groups the pairs by expert (on by default); off, every
    // pair is its own matrix-vector product, as in decode. For tests and minerva-bench.
    void set_moe_grouping(bool on) { moe_grouping_ = on; }
    bool is_cpu_device() const;

private:
    struct Buffer {
        VkBuffer buf = VK_NULL_HANDLE;
        VkDeviceMemory mem = VK_NULL_HANDLE;
        uint64_t size = 0;
        void* map = nullptr;
    };
    struct Arena {  // bump allocator over chunks
        std::vector<uint64_t> chunks;  // buffer ids
        uint64_t used = 0;             // in the last chunk
    };
    struct Access {
        uint64_t buffer, begin, end;
        bool write;
    };
    struct Frame {
        VkCommandBuffer cb = VK_NULL_HANDLE;
        VkFence fence = VK_NULL_HANDLE;
        std::vector<VkDescriptorPool> pools;
        size_t pool_used = 0;
        uint64_t staging = 0;  // buffer id of this frame's upload ring
        uint64_t staging_used = 0;
        VkQueryPool queries = VK_NULL_HANDLE;
        std::vector<std::string> query_names;  // one per pair of timestamps
        bool recording = false, in_flight = false;
    };
    // A tensor argument of a dispatch: where it is and whether the shader writes it.
    struct Arg {
        const Tensor* t;
        bool write;
        uint64_t bytes = 0;  // 0: t->nbytes()
    };

    uint64_t create_buffer(uint64_t size, bool host_visible, bool readback = false);
    void destroy_buffer(uint64_t id);
    Tensor arena_alloc(Arena& a, bool device_local_fill, DType type, const int64_t ne[4], const std::string& what);
    Frame& frame();  // the frame being recorded (begins it if needed)
    void wait_frame(Frame& f);
    void track(uint64_t buffer, uint64_t begin, uint64_t end, bool write);  // barrier if needed
    void full_barrier(VkCommandBuffer cb);
    VkDescriptorSet alloc_set(Frame& f);
    void dispatch(const std::string& pipeline, std::initializer_list<Arg> args, void* push, size_t push_bytes,
                  uint32_t gx, uint32_t gy = 1, uint32_t gz = 1);
    // Records commands into a one-time command buffer, submits it and waits for the queue (set-up
    // work outside the frames: zero fills, staged uploads).
    void run_now(const std::function<void(VkCommandBuffer)>& record);
    void immediate_copy(uint64_t src, uint64_t src_off, uint64_t dst, uint64_t dst_off, uint64_t bytes);
    void collect_timings(Frame& f);
    std::string weight_variant(const char* op, DType t) const;
    void check_tensor(const Tensor& t, const char* op, const char* arg) const;
    void gated_unit(const char* op, const Tensor& gate, const Tensor& up, const Tensor& out);  // swiglu, geglu

    std::unique_ptr<Context> ctx_;
    std::unique_ptr<Pipelines> pipes_;
    VkCommandPool cmd_pool_ = VK_NULL_HANDLE;
    std::vector<Buffer> buffers_;  // id = index + 1; destroyed ids are left empty
    Arena weights_, scratch_;
    uint64_t chunk_bytes_ = 0;      // arena chunk size
    uint64_t align_ = 256;          // sub-allocation alignment
    uint64_t dummy_ = 0;            // bound to unused binding slots
    uint64_t upload_staging_ = 0;   // for upload_weight
    uint64_t readback_ = 0;         // for read()
    uint64_t attn_partial_ = 0;     // attention split partials
    uint64_t moe_groups_ = 0;       // matmul_id: moe_group.comp's grouping of the batch's pairs
    bool moe_grouping_ = true;
    std::vector<uint64_t> retired_; // buffers replaced while frames may still use them
    Frame frames_[2];
    int cur_ = 0;
    std::vector<Access> since_barrier_;
    uint64_t weight_bytes_ = 0, planned_weight_bytes_ = 0, next_progress_ = 0;
    bool profiling_ = false;
    bool use_subgroups_ = false;
    uint32_t forced_split_ = 0;
    std::map<std::string, KernelTiming> timings_;
    bool log_timings_ = false;
    bool cpu_shapes_ = false;
    static constexpr uint64_t k_staging_bytes = 16ull << 20;
    static constexpr uint32_t k_max_queries = 4096;
};

}  // namespace minerva::vk
