// kernels/vulkan/vk_backend.cpp: memory, command recording and the ops of the Vulkan backend.
// Vulkan create-info structs are written {VK_STRUCTURE_TYPE_...} and zero-fill the rest on purpose.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include "vulkan/vk_backend.h"

#include "log/log.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>

#include "minerva/error.h"
#include "vulkan/vk_push.h"

namespace minerva::vk {

static uint64_t round_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }
static uint32_t ceil_div(uint64_t a, uint64_t b) { return static_cast<uint32_t>((a + b - 1) / b); }

static std::string shape_str(const Tensor& t) {
    std::string s(1, '[');
    for (int i = 0; i < 4; ++i) {
        if (i) s += ", ";
        s += std::to_string(t.ne[i]);
    }
    s += ']';
    return s;
}

static bool has_weight_shader(DType t) {
    switch (t) {
        case DType::F32: case DType::F16: case DType::BF16: case DType::Q4_0: case DType::Q4_1:
        case DType::Q5_0: case DType::Q5_1: case DType::Q8_0: case DType::Q2_K: case DType::Q3_K:
        case DType::Q4_K: case DType::Q5_K: case DType::Q6_K: return true;
        default: return false;
    }
}

// KV cache types of kv_store.comp and attention.comp (kv_cache.glsl): the code kv_store takes and
// the name part of the attention variants; -1 for a type neither reads.
static int kv_type_code(DType t) {
    switch (t) {
        case DType::F32: return 0;
        case DType::F16: return 1;
        case DType::Q8_0: return 2;
        case DType::Q4_0: return 3;
        default: return -1;
    }
}
static const char* kv_type_part(DType t) {
    switch (t) {
        case DType::F32: return "f32";
        case DType::F16: return "f16";
        case DType::Q8_0: return "q8_0";
        case DType::Q4_0: return "q4_0";
        default: return "";
    }
}

// ---------------------------------------------------------------- construction

VulkanBackend::VulkanBackend(std::unique_ptr<Context> ctx) : ctx_(std::move(ctx)) {
    pipes_ = std::make_unique<Pipelines>(*ctx_);
    const auto& lim = ctx_->phys.props.limits;
    align_ = std::max<uint64_t>(256, lim.minStorageBufferOffsetAlignment);
    chunk_bytes_ = std::min<uint64_t>(lim.maxStorageBufferRange, 1ull << 30) / align_ * align_;
    use_subgroups_ = ctx_->phys.subgroup_arithmetic;
    cpu_shapes_ = ctx_->phys.rank() == 3;

    VkCommandPoolCreateInfo pi{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
    pi.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
    pi.queueFamilyIndex = ctx_->phys.compute_family;
    check(vkCreateCommandPool(ctx_->device, &pi, nullptr, &cmd_pool_), "vkCreateCommandPool");
    for (Frame& f : frames_) {
        VkCommandBufferAllocateInfo ai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
        ai.commandPool = cmd_pool_;
        ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
        ai.commandBufferCount = 1;
        check(vkAllocateCommandBuffers(ctx_->device, &ai, &f.cb), "vkAllocateCommandBuffers");
        VkFenceCreateInfo fi{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        check(vkCreateFence(ctx_->device, &fi, nullptr, &f.fence), "vkCreateFence");
        f.staging = create_buffer(k_staging_bytes, true);
        if (ctx_->phys.timestamps) {
            VkQueryPoolCreateInfo qi{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
            qi.queryType = VK_QUERY_TYPE_TIMESTAMP;
            qi.queryCount = k_max_queries;
            check(vkCreateQueryPool(ctx_->device, &qi, nullptr, &f.queries), "vkCreateQueryPool");
        }
    }
    dummy_ = create_buffer(256, false);
    // MINERVA_VK_PROFILE=1: time every dispatch and log the per-shader totals at teardown.
    if (const char* env = std::getenv("MINERVA_VK_PROFILE"); env && *env && *env != '0' && ctx_->phys.timestamps)
        profiling_ = log_timings_ = true;
}

VulkanBackend::~VulkanBackend() {
    if (!ctx_ || !ctx_->device) return;
    vkDeviceWaitIdle(ctx_->device);
    if (log_timings_) {
        for (Frame& f : frames_) collect_timings(f);
        std::vector<std::pair<std::string, KernelTiming>> v(timings_.begin(), timings_.end());
        std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second.total_ns > b.second.total_ns; });
        for (const auto& [n, k] : v)
            logging::info("vulkan profile: {:<20} {:>7} dispatches {:>10.2f} ms", n, k.dispatches, k.total_ns * 1e-6);
    }
    for (Frame& f : frames_) {
        for (VkDescriptorPool p : f.pools) vkDestroyDescriptorPool(ctx_->device, p, nullptr);
        if (f.queries) vkDestroyQueryPool(ctx_->device, f.queries, nullptr);
        if (f.fence) vkDestroyFence(ctx_->device, f.fence, nullptr);
    }
    if (cmd_pool_) vkDestroyCommandPool(ctx_->device, cmd_pool_, nullptr);
    for (size_t i = 0; i < buffers_.size(); ++i) destroy_buffer(i + 1);
    pipes_.reset();
}

std::string VulkanBackend::name() const { return std::string("vulkan: ") + ctx_->phys.props.deviceName; }

// ---------------------------------------------------------------- memory

uint64_t VulkanBackend::create_buffer(uint64_t size, bool host_visible, bool readback) {
    Buffer b;
    b.size = size;
    VkBufferCreateInfo bi{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
    bi.size = size;
    bi.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
    bi.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
    check(vkCreateBuffer(ctx_->device, &bi, nullptr, &b.buf), "vkCreateBuffer");
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(ctx_->device, b.buf, &req);
    uint32_t type = UINT32_MAX;
    const VkMemoryPropertyFlags hv = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    bool uma = ctx_->phys.rank() != 0;  // integrated/cpu: device-local memory is the host's
    if (host_visible) {
        if (readback) type = ctx_->find_memory_type(req.memoryTypeBits, hv | VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
        if (type == UINT32_MAX && !uma)
            type = ctx_->find_memory_type(req.memoryTypeBits, hv, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
        if (type == UINT32_MAX) type = ctx_->find_memory_type(req.memoryTypeBits, hv);
    } else {
        // On unified-memory devices keep device memory mapped too: uploads become a memcpy.
        if (uma) type = ctx_->find_memory_type(req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT | hv);
        if (type == UINT32_MAX) type = ctx_->find_memory_type(req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
        if (type == UINT32_MAX) type = ctx_->find_memory_type(req.memoryTypeBits, 0);
    }
    if (type == UINT32_MAX) {
        vkDestroyBuffer(ctx_->device, b.buf, nullptr);
        throw Error("vulkan: no suitable memory type for a buffer");
    }
    VkMemoryAllocateInfo ai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
    ai.allocationSize = req.size;
    ai.memoryTypeIndex = type;
    VkResult r = vkAllocateMemory(ctx_->device, &ai, nullptr, &b.mem);
    if (r != VK_SUCCESS) {
        vkDestroyBuffer(ctx_->device, b.buf, nullptr);
        check(r, ("vkAllocateMemory(" + std::to_string(size >> 20) + " MiB)").c_str());
    }
    check(vkBindBufferMemory(ctx_->device, b.buf, b.mem, 0), "vkBindBufferMemory");
    if (ctx_->phys.mem.memoryTypes[type].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT)
        check(vkMapMemory(ctx_->device, b.mem, 0, VK_WHOLE_SIZE, 0, &b.map), "vkMapMemory");
    buffers_.push_back(b);
    return buffers_.size();
}

void VulkanBackend::destroy_buffer(uint64_t id) {
    Buffer& b = buffers_.at(id - 1);
    if (b.map) vkUnmapMemory(ctx_->device, b.mem);
    if (b.buf) vkDestroyBuffer(ctx_->device, b.buf, nullptr);
    if (b.mem) vkFreeMemory(ctx_->device, b.mem, nullptr);
    b = Buffer{};
}

Tensor VulkanBackend::arena_alloc(Arena& a, bool zero, DType type, const int64_t ne[4], const std::string& what) {
    Tensor t;
    t.type = type;
    for (int i = 0; i < 4; ++i) {
        if (ne[i] <= 0) throw Error("vulkan: " + what + ": dimension " + std::to_string(i) + " is " + std::to_string(ne[i]));
        t.ne[i] = ne[i];
    }
    uint64_t bytes = std::max<uint64_t>(t.nbytes(), 4);
    if (bytes > ctx_->phys.props.limits.maxStorageBufferRange)
        throw Error("vulkan: " + what + " " + shape_str(t) + " needs " + std::to_string(bytes >> 20) +
                    " MiB in one buffer, more than this device's maxStorageBufferRange (" +
                    std::to_string(ctx_->phys.props.limits.maxStorageBufferRange >> 20) + " MiB): use --device cpu");
    uint64_t need = round_up(bytes, align_);
    if (a.chunks.empty() || a.used + need > buffers_[a.chunks.back() - 1].size) {
        uint64_t size = std::max(chunk_bytes_, need);
        // The last chunk only needs to hold what remains to be planned; avoid over-allocating small models.
        if (&a == &weights_ && planned_weight_bytes_) {
            uint64_t left = planned_weight_bytes_ > weight_bytes_ ? planned_weight_bytes_ - weight_bytes_ : 0;
            size = std::max(need, std::min(size, round_up(left + left / 8 + align_, align_)));
        } else if (&a == &scratch_) {
            size = std::max(need, std::min<uint64_t>(size, 64ull << 20));
        }
        uint64_t id = create_buffer(size, false);
        a.chunks.push_back(id);
        a.used = 0;
        if (zero) {
            Buffer& b = buffers_[id - 1];
            if (b.map) {
                std::memset(b.map, 0, size);
            } else {
                run_now([&](VkCommandBuffer cb) { vkCmdFillBuffer(cb, b.buf, 0, VK_WHOLE_SIZE, 0); });
            }
        }
    }
    t.buffer = a.chunks.back();
    t.offset = a.used;
    a.used += need;
    return t;
}

void VulkanBackend::plan_weights(uint64_t total_bytes) {
    uint64_t avail = ctx_->device_local_available();
    if (total_bytes > avail)
        throw Error("the model's weights (" + std::to_string(total_bytes >> 20) + " MiB) do not fit the memory of " +
                    name() + " (" + std::to_string(avail >> 20) + " MiB available" +
                    (ctx_->memory_budget ? ", VK_EXT_memory_budget" : "") + "): use --device cpu or a smaller model");
    planned_weight_bytes_ = total_bytes;
    next_progress_ = 0;
}

void VulkanBackend::run_now(const std::function<void(VkCommandBuffer)>& record) {
    VkCommandBuffer cb;
    VkCommandBufferAllocateInfo ai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    ai.commandPool = cmd_pool_;
    ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    ai.commandBufferCount = 1;
    check(vkAllocateCommandBuffers(ctx_->device, &ai, &cb), "vkAllocateCommandBuffers");
    VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
    vkBeginCommandBuffer(cb, &bi);
    record(cb);
    vkEndCommandBuffer(cb);
    VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
    si.commandBufferCount = 1;
    si.pCommandBuffers = &cb;
    check(vkQueueSubmit(ctx_->queue, 1, &si, VK_NULL_HANDLE), "vkQueueSubmit");
    check(vkQueueWaitIdle(ctx_->queue), "vkQueueWaitIdle");
    vkFreeCommandBuffers(ctx_->device, cmd_pool_, 1, &cb);
}

void VulkanBackend::immediate_copy(uint64_t src, uint64_t src_off, uint64_t dst, uint64_t dst_off, uint64_t bytes) {
    run_now([&](VkCommandBuffer cb) {
        VkBufferCopy c{src_off, dst_off, bytes};
        vkCmdCopyBuffer(cb, buffers_[src - 1].buf, buffers_[dst - 1].buf, 1, &c);
    });
}

Tensor VulkanBackend::upload_weight(DType type, const int64_t ne[4], const void* data, const std::string& name) {
    if (!has_weight_shader(type))
        throw Error("tensor '" + name + "' has type " + std::string(dtype_name(type)) +
                    ", which the Vulkan backend cannot compute with");
    {
        Tensor probe;
        probe.type = type;
        for (int i = 0; i < 4; ++i) probe.ne[i] = ne[i];
        if (ne[0] % dtype_info(type).block_elems != 0)
            throw Error("tensor '" + name + "': row of " + std::to_string(ne[0]) + " is not a whole number of " +
                        std::string(dtype_name(type)) + " blocks");
        uint64_t bytes = probe.nbytes();
        uint64_t avail = ctx_->device_local_available();
        if (!planned_weight_bytes_ && bytes > avail)
            throw Error("tensor '" + name + "' (" + std::to_string(bytes >> 20) + " MiB) does not fit the memory of " +
                        this->name() + " (" + std::to_string(avail >> 20) + " MiB available): use --device cpu");
    }
    Tensor t = arena_alloc(weights_, false, type, ne, "weight '" + name + "'");
    uint64_t bytes = t.nbytes();
    Buffer& dst = buffers_[t.buffer - 1];
    if (dst.map) {
        std::memcpy(static_cast<char*>(dst.map) + t.offset, data, bytes);
    } else {
        if (!upload_staging_) upload_staging_ = create_buffer(std::min<uint64_t>(64ull << 20, chunk_bytes_), true);
        Buffer& st = buffers_[upload_staging_ - 1];
        for (uint64_t done = 0; done < bytes;) {
            uint64_t piece = std::min(bytes - done, st.size);
            std::memcpy(st.map, static_cast<const char*>(data) + done, piece);
            immediate_copy(upload_staging_, 0, t.buffer, t.offset + done, piece);
            done += piece;
        }
    }
    weight_bytes_ += bytes;
    uint64_t total = planned_weight_bytes_;
    if (total >= (256ull << 20) && weight_bytes_ >= next_progress_) {
        logging::debug("vulkan: uploaded {} / {} MiB of weights ({}%)", weight_bytes_ >> 20, total >> 20,
                     weight_bytes_ * 100 / total);
        next_progress_ = weight_bytes_ + total / 10;
    } else if (!total && weight_bytes_ >= next_progress_ + (512ull << 20)) {
        logging::info("vulkan: uploaded {} MiB of weights", weight_bytes_ >> 20);
        next_progress_ = weight_bytes_;
    }
    return t;
}

Tensor VulkanBackend::alloc(DType type, const int64_t ne[4]) {
    return arena_alloc(scratch_, true, type, ne, "buffer");
}

void VulkanBackend::check_tensor(const Tensor& t, const char* op, const char* arg) const {
    if (t.buffer == 0 || t.buffer > buffers_.size() || !buffers_[t.buffer - 1].buf)
        throw Error(std::string("vulkan ") + op + ": " + arg + " is not memory of this Vulkan backend");
    if (t.offset + t.nbytes() > buffers_[t.buffer - 1].size)
        throw Error(std::string("vulkan ") + op + ": " + arg + " " + shape_str(t) + " runs past the end of its buffer");
}

// ---------------------------------------------------------------- recording

void VulkanBackend::full_barrier(VkCommandBuffer cb) {
    VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT | VK_ACCESS_SHADER_READ_BIT |
                       VK_ACCESS_TRANSFER_READ_BIT;
    mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                       VK_ACCESS_TRANSFER_WRITE_BIT;
    VkPipelineStageFlags st = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    vkCmdPipelineBarrier(cb, st, st, 0, 1, &mb, 0, nullptr, 0, nullptr);
    since_barrier_.clear();
}

void VulkanBackend::track(uint64_t buffer, uint64_t begin, uint64_t end, bool write) {
    for (const Access& a : since_barrier_)
        if (a.buffer == buffer && a.begin < end && begin < a.end && (a.write || write)) {
            full_barrier(frames_[cur_].cb);
            break;
        }
    since_barrier_.push_back({buffer, begin, end, write});
}

void VulkanBackend::wait_frame(Frame& f) {
    if (!f.in_flight) return;
    check(vkWaitForFences(ctx_->device, 1, &f.fence, VK_TRUE, UINT64_MAX), "vkWaitForFences");
    check(vkResetFences(ctx_->device, 1, &f.fence), "vkResetFences");
    f.in_flight = false;
    collect_timings(f);
    if (!frames_[0].in_flight && !frames_[1].in_flight) {
        for (uint64_t id : retired_) destroy_buffer(id);
        retired_.clear();
    }
}

VulkanBackend::Frame& VulkanBackend::frame() {
    Frame& f = frames_[cur_];
    if (f.recording) return f;
    wait_frame(f);
    for (VkDescriptorPool p : f.pools) vkResetDescriptorPool(ctx_->device, p, 0);
    f.pool_used = 0;
    f.staging_used = 0;
    f.query_names.clear();
    VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
    check(vkBeginCommandBuffer(f.cb, &bi), "vkBeginCommandBuffer");
    if (f.queries) vkCmdResetQueryPool(f.cb, f.queries, 0, k_max_queries);
    f.recording = true;
    full_barrier(f.cb);  // orders this step after everything submitted before it
    return f;
}

VkDescriptorSet VulkanBackend::alloc_set(Frame& f) {
    for (;;) {
        if (f.pool_used == f.pools.size()) {
            VkDescriptorPoolSize ps{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1024 * k_max_bindings};
            VkDescriptorPoolCreateInfo pi{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
            pi.maxSets = 1024;
            pi.poolSizeCount = 1;
            pi.pPoolSizes = &ps;
            VkDescriptorPool pool;
            check(vkCreateDescriptorPool(ctx_->device, &pi, nullptr, &pool), "vkCreateDescriptorPool");
            f.pools.push_back(pool);
        }
        VkDescriptorSetAllocateInfo ai{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
        ai.descriptorPool = f.pools[f.pool_used];
        ai.descriptorSetCount = 1;
        ai.pSetLayouts = &pipes_->set_layout;
        VkDescriptorSet set;
        VkResult r = vkAllocateDescriptorSets(ctx_->device, &ai, &set);
        if (r == VK_SUCCESS) return set;
        if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL) check(r, "vkAllocateDescriptorSets");
        ++f.pool_used;
    }
}

// The one dispatch helper: checks the argument count and push-constant size against what the
// SPIR-V declares, binds each tensor at the device's offset alignment (the rest of the offset
// goes to push.off[i]), inserts barriers where needed and folds large 1-D grids into 2-D.
void VulkanBackend::dispatch(const std::string& name, std::initializer_list<Arg> args, void* push, size_t push_bytes,
                             uint32_t gx, uint32_t gy, uint32_t gz) {
    if (gx == 0 || gy == 0 || gz == 0) return;
    const Pipeline& p = pipes_->get(name);
    if (args.size() != p.n_bindings)
        throw Error("vulkan: shader " + name + " takes " + std::to_string(p.n_bindings) + " buffers, dispatched with " +
                    std::to_string(args.size()));
    if (push_bytes != p.push_bytes)
        throw Error("vulkan: shader " + name + " push constants are " + std::to_string(p.push_bytes) +
                    " bytes, dispatched with " + std::to_string(push_bytes));
    Frame& f = frame();
    const uint64_t min_align = std::max<uint64_t>(4, ctx_->phys.props.limits.minStorageBufferOffsetAlignment);
    const uint64_t max_range = ctx_->phys.props.limits.maxStorageBufferRange;
    auto* off = static_cast<uint32_t*>(push);
    VkDescriptorBufferInfo infos[k_max_bindings];
    bool conflict = false;
    uint32_t i = 0;
    for (const Arg& a : args) {
        const Tensor& t = *a.t;
        const Buffer& b = buffers_.at(t.buffer - 1);
        uint64_t bytes = a.bytes ? a.bytes : t.nbytes();
        if (t.offset % 4) throw Error("vulkan: shader " + name + ": tensor offset " + std::to_string(t.offset) + " is not 4-byte aligned");
        uint64_t base = t.offset / min_align * min_align;
        uint64_t range = std::min({round_up(t.offset - base + bytes, 4), b.size - base, max_range});
        infos[i] = {b.buf, base, range};
        off[i] = static_cast<uint32_t>((t.offset - base) / 4);
        for (const Access& s : since_barrier_)
            if (s.buffer == t.buffer && s.begin < t.offset + bytes && t.offset < s.end && (s.write || a.write)) conflict = true;
        ++i;
    }
    for (; i < k_max_bindings; ++i) {
        infos[i] = {buffers_[dummy_ - 1].buf, 0, VK_WHOLE_SIZE};
        off[i] = 0;
    }
    if (conflict) full_barrier(f.cb);
    for (const Arg& a : args) since_barrier_.push_back({a.t->buffer, a.t->offset, a.t->offset + (a.bytes ? a.bytes : a.t->nbytes()), a.write});

    VkDescriptorSet set = alloc_set(f);
    VkWriteDescriptorSet w{VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
    w.dstSet = set;
    w.dstBinding = 0;
    w.descriptorCount = k_max_bindings;
    w.descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    w.pBufferInfo = infos;
    vkUpdateDescriptorSets(ctx_->device, 1, &w, 0, nullptr);

    const uint32_t max_x = ctx_->phys.props.limits.maxComputeWorkGroupCount[0];
    if (gx > max_x) {
        if (gy != 1 || gz != 1) throw Error("vulkan: shader " + name + ": grid too large");
        gy = ceil_div(gx, max_x);
        gx = max_x;
    }
    bool timed = profiling_ && f.queries && f.query_names.size() * 2 + 2 <= k_max_queries;
    if (timed) vkCmdWriteTimestamp(f.cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, f.queries, uint32_t(f.query_names.size() * 2));
    vkCmdBindPipeline(f.cb, VK_PIPELINE_BIND_POINT_COMPUTE, p.pipeline);
    vkCmdBindDescriptorSets(f.cb, VK_PIPELINE_BIND_POINT_COMPUTE, pipes_->layout, 0, 1, &set, 0, nullptr);
    vkCmdPushConstants(f.cb, pipes_->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, static_cast<uint32_t>(push_bytes), push);
    vkCmdDispatch(f.cb, gx, gy, gz);
    if (timed) {
        vkCmdWriteTimestamp(f.cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, f.queries, uint32_t(f.query_names.size() * 2 + 1));
        f.query_names.push_back(name);
    }
}

void VulkanBackend::collect_timings(Frame& f) {
    if (f.query_names.empty()) return;
    std::vector<uint64_t> ts(f.query_names.size() * 2);
    VkResult r = vkGetQueryPoolResults(ctx_->device, f.queries, 0, static_cast<uint32_t>(ts.size()), ts.size() * 8,
                                       ts.data(), 8, VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
    if (r == VK_SUCCESS) {
        double period = ctx_->phys.props.limits.timestampPeriod;
        for (size_t i = 0; i < f.query_names.size(); ++i) {
            KernelTiming& k = timings_[f.query_names[i]];
            k.dispatches++;
            k.total_ns += static_cast<double>(ts[2 * i + 1] - ts[2 * i]) * period;
        }
    }
    f.query_names.clear();
}

bool VulkanBackend::is_cpu_device() const { return ctx_->phys.rank() == 3; }

void VulkanBackend::set_profiling(bool on) {
    if (on && !ctx_->phys.timestamps) throw Error("vulkan: " + name() + " has no timestamp queries on its compute queue");
    sync();
    profiling_ = on;
}

double VulkanBackend::measure_copy_bandwidth(uint64_t bytes, int reps) {
    if (!ctx_->phys.timestamps) throw Error("vulkan: " + name() + " has no timestamp queries on its compute queue");
    sync();
    bytes = std::min<uint64_t>(bytes, ctx_->phys.props.limits.maxStorageBufferRange) / 256 * 256;
    uint64_t a = create_buffer(bytes, false), b = create_buffer(bytes, false);
    double best = 0;
    for (int r = 0; r < reps; ++r) {
        Frame& f = frame();
        vkCmdWriteTimestamp(f.cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, f.queries, 0);
        VkBufferCopy c{0, 0, bytes};
        vkCmdCopyBuffer(f.cb, buffers_[a - 1].buf, buffers_[b - 1].buf, 1, &c);
        vkCmdWriteTimestamp(f.cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, f.queries, 1);
        sync();
        uint64_t ts[2];
        check(vkGetQueryPoolResults(ctx_->device, f.queries, 0, 2, sizeof ts, ts, 8,
                                    VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
              "vkGetQueryPoolResults");
        double sec = double(ts[1] - ts[0]) * ctx_->phys.props.limits.timestampPeriod * 1e-9;
        if (sec > 0) best = std::max(best, 2.0 * double(bytes) / sec);
    }
    destroy_buffer(a);
    destroy_buffer(b);
    return best;
}

void VulkanBackend::submit() {
    Frame& f = frames_[cur_];
    if (!f.recording) return;
    // Make transfer and shader writes visible to the host for read().
    VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    vkCmdPipelineBarrier(f.cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, nullptr, 0, nullptr);
    check(vkEndCommandBuffer(f.cb), "vkEndCommandBuffer");
    VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
    si.commandBufferCount = 1;
    si.pCommandBuffers = &f.cb;
    check(vkQueueSubmit(ctx_->queue, 1, &si, f.fence), "vkQueueSubmit");
    f.recording = false;
    f.in_flight = true;
    since_barrier_.clear();
    cur_ ^= 1;
}

void VulkanBackend::sync() {
    submit();
    wait_frame(frames_[0]);
    wait_frame(frames_[1]);
}

void VulkanBackend::write(const Tensor& t, const void* src, size_t bytes, size_t offset) {
    check_tensor(t, "write", "tensor");
    if (offset + bytes > t.nbytes())
        throw Error("vulkan write: " + std::to_string(bytes) + " bytes at offset " + std::to_string(offset) +
                    " run past the tensor's " + std::to_string(t.nbytes()) + " bytes");
    for (size_t done = 0; done < bytes;) {
        uint64_t piece = std::min<uint64_t>(bytes - done, k_staging_bytes);
        if (frames_[cur_].recording && frames_[cur_].staging_used + piece > k_staging_bytes) submit();
        Frame& f = frame();
        Buffer& st = buffers_[f.staging - 1];
        std::memcpy(static_cast<char*>(st.map) + f.staging_used, static_cast<const char*>(src) + done, piece);
        uint64_t dst_off = t.offset + offset + done;
        track(t.buffer, dst_off, dst_off + piece, true);
        VkBufferCopy c{f.staging_used, dst_off, piece};
        vkCmdCopyBuffer(f.cb, st.buf, buffers_[t.buffer - 1].buf, 1, &c);
        f.staging_used += round_up(piece, 16);
        done += piece;
    }
}

void VulkanBackend::read(const Tensor& t, void* dst, size_t bytes, size_t offset) {
    check_tensor(t, "read", "tensor");
    if (offset + bytes > t.nbytes())
        throw Error("vulkan read: " + std::to_string(bytes) + " bytes at offset " + std::to_string(offset) +
                    " run past the tensor's " + std::to_string(t.nbytes()) + " bytes");
    if (bytes == 0) return;
    if (!readback_ || buffers_[readback_ - 1].size < bytes) {
        sync();
        if (readback_) destroy_buffer(readback_);
        readback_ = create_buffer(std::max<uint64_t>(round_up(bytes, 1 << 20), 1 << 20), true, true);
    }
    Frame& f = frame();
    uint64_t src_off = t.offset + offset;
    track(t.buffer, src_off, src_off + bytes, false);
    VkBufferCopy c{src_off, 0, bytes};
    vkCmdCopyBuffer(f.cb, buffers_[t.buffer - 1].buf, buffers_[readback_ - 1].buf, 1, &c);
    sync();
    std::memcpy(dst, buffers_[readback_ - 1].map, bytes);
}

// ---------------------------------------------------------------- ops

std::string VulkanBackend::weight_variant(const char* op, DType t) const {
    if (!has_weight_shader(t))
        throw Error(std::string("vulkan ") + op + ": no shader for weight type " + std::string(dtype_name(t)));
    std::string n(dtype_name(t));
    for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return std::string(op) + "_" + n;
}

static void require(bool ok, const char* op, const std::string& what) {
    if (!ok) throw Error(std::string("vulkan ") + op + ": " + what);
}

void VulkanBackend::get_rows(const Tensor& table, const Tensor& ids, const Tensor& out) {
    check_tensor(table, "get_rows", "table");
    check_tensor(ids, "get_rows", "ids");
    check_tensor(out, "get_rows", "out");
    int64_t n = ids.n_elements();
    require(ids.type == DType::I32 && out.type == DType::F32 && out.ne[0] == table.ne[0] && out.n_rows() >= n,
            "get_rows", "shapes " + shape_str(table) + " / ids " + shape_str(ids) + " / out " + shape_str(out));
    PcGetRows pc{};
    pc.k = static_cast<uint32_t>(table.ne[0]);
    pc.n = static_cast<uint32_t>(n);
    pc.n_table = static_cast<uint32_t>(table.n_rows());
    pc.row_bytes = static_cast<uint32_t>(table.row_size());
    dispatch(weight_variant("get_rows", table.type), {{&table, false}, {&ids, false}, {&out, true}}, &pc, sizeof pc,
             pc.n);
}

void VulkanBackend::rms_norm(const Tensor& x, const Tensor& w, const Tensor& out, float eps) {
    check_tensor(x, "rms_norm", "x");
    check_tensor(w, "rms_norm", "w");
    check_tensor(out, "rms_norm", "out");
    require(x.type == DType::F32 && w.type == DType::F32 && out.type == DType::F32 && w.ne[0] == x.ne[0] &&
                out.n_elements() == x.n_elements(),
            "rms_norm", "shapes x " + shape_str(x) + " w " + shape_str(w) + " out " + shape_str(out));
    PcRmsNorm pc{};
    pc.n = static_cast<uint32_t>(x.ne[0]);
    pc.rows = static_cast<uint32_t>(x.n_rows());
    pc.eps = eps;
    dispatch("rms_norm", {{&x, false}, {&w, false}, {&out, true}}, &pc, sizeof pc, pc.rows);
}

void VulkanBackend::matmul(const Tensor& w, const Tensor& x, const Tensor& out) {
    check_tensor(w, "matmul", "w");
    check_tensor(x, "matmul", "x");
    check_tensor(out, "matmul", "out");
    int64_t n = x.n_rows();
    require(x.type == DType::F32 && out.type == DType::F32 && x.ne[0] == w.ne[0] && out.ne[0] == w.ne[1] &&
                out.n_rows() == n,
            "matmul", "shapes w " + shape_str(w) + " x " + shape_str(x) + " out " + shape_str(out));
    PcMatvec pc{};
    pc.k = static_cast<uint32_t>(w.ne[0]);
    pc.m = static_cast<uint32_t>(w.ne[1]);
    pc.row_bytes = static_cast<uint32_t>(w.row_size());
    std::initializer_list<Arg> args = {{&w, false}, {&x, false}, {&out, true}};
    const int64_t n_max = 8;  // matvec.comp NMAX
    if (n <= n_max) {
        pc.n = static_cast<uint32_t>(n);
        const uint32_t units = ceil_div(pc.k, 32);
        if (cpu_shapes_ || units <= 8) {
            // One invocation per row, no reduction: CPU devices (lavapipe) run invocations as
            // SIMD lanes and pay dearly for subgroup/shared reductions; short rows (the 128k-row
            // output of small models) would leave most lanes of a per-row subgroup idle.
            dispatch(weight_variant("matvec", w.type) + "_rows", args, &pc, sizeof pc, ceil_div(pc.m, 64 * 4));  // RPI 4
        } else if (use_subgroups_) {
            // One subgroup per row, 64-invocation workgroups; CPU devices (lavapipe) pay per
            // workgroup, so give each of their subgroups 4 rows in turn.
            uint32_t sg = std::max<uint32_t>(1, ctx_->phys.subgroup_size);
            pc.rows_per_wg = std::max<uint32_t>(1, 64 / sg) * (ctx_->phys.rank() == 3 ? 4 : 1);
            dispatch(weight_variant("matvec", w.type) + "_sg", args, &pc, sizeof pc, ceil_div(pc.m, pc.rows_per_wg));
        } else {
            dispatch(weight_variant("matvec", w.type), args, &pc, sizeof pc, pc.m);
        }
    } else if (cpu_shapes_) {
        // CPU devices: the tiled matmul's shared-memory traffic and barriers cost more than they
        // save; the row-per-invocation matvec over 8 columns at a time dequantizes each weight
        // once per 8 columns and shares every x load between 4 rows.
        for (int64_t c0 = 0; c0 < n; c0 += n_max) {
            Tensor xc = x, oc = out;
            const int64_t nc = std::min(n_max, n - c0);
            xc.offset += static_cast<uint64_t>(c0) * x.row_size();
            oc.offset += static_cast<uint64_t>(c0) * out.row_size();
            xc.ne[1] = oc.ne[1] = nc;
            xc.ne[2] = xc.ne[3] = oc.ne[2] = oc.ne[3] = 1;
            pc.n = static_cast<uint32_t>(nc);
            dispatch(weight_variant("matvec", w.type) + "_rows", {{&w, false}, {&xc, false}, {&oc, true}}, &pc, sizeof pc,
                     ceil_div(pc.m, 64 * 4));
        }
    } else {
        pc.n = static_cast<uint32_t>(n);
        dispatch(weight_variant("matmul", w.type), args, &pc, sizeof pc, ceil_div(pc.m, 64), ceil_div(pc.n, 64));
    }
}

void VulkanBackend::rope(const Tensor& x, const Tensor& pos, const RopeParams& p, const Tensor* ff) {
    check_tensor(x, "rope", "x");
    check_tensor(pos, "rope", "pos");
    int64_t n_tok = x.ne[2] * x.ne[3];
    require(x.type == DType::F32 && pos.type == DType::I32 && pos.n_elements() >= n_tok && p.n_rot > 0 &&
                p.n_rot % 2 == 0 && p.n_rot <= x.ne[0],
            "rope", "shapes x " + shape_str(x) + " pos " + shape_str(pos) + " n_rot " + std::to_string(p.n_rot));
    PcRope pc{};
    pc.head_dim = static_cast<uint32_t>(x.ne[0]);
    pc.n_heads = static_cast<uint32_t>(x.ne[1]);
    pc.n_tokens = static_cast<uint32_t>(n_tok);
    pc.n_rot = static_cast<uint32_t>(p.n_rot);
    pc.freq_base = p.freq_base;
    pc.freq_scale = p.freq_scale;
    pc.neox = p.neox ? 1 : 0;
    pc.attn_factor = p.attn_factor;
    Tensor dummy;
    dummy.buffer = dummy_;
    dummy.ne[0] = 64;
    const Tensor* f = &dummy;
    if (ff) {
        check_tensor(*ff, "rope", "freq_factors");
        require(ff->type == DType::F32 && ff->n_elements() >= p.n_rot / 2, "rope", "freq_factors " + shape_str(*ff));
        f = ff;
        pc.has_ff = 1;
    }
    uint64_t threads = uint64_t(pc.n_rot / 2) * pc.n_heads * pc.n_tokens;
    dispatch("rope", {{&x, true}, {&pos, false}, {f, false}}, &pc, sizeof pc, ceil_div(threads, 64));
}

void VulkanBackend::kv_store(const Tensor& k, const Tensor& v, const Tensor& kc, const Tensor& vc, const Tensor& rows) {
    check_tensor(k, "kv_store", "k");
    check_tensor(v, "kv_store", "v");
    check_tensor(kc, "kv_store", "k_cache");
    check_tensor(vc, "kv_store", "v_cache");
    check_tensor(rows, "kv_store", "rows");
    int64_t n_tok = k.n_rows();
    // Quantized rows are whole 32-value blocks (which then never straddle a head: head_dim % 32 == 0).
    auto row_ok = [](const Tensor& c) {
        return kv_type_code(c.type) >= 0 && (kv_type_code(c.type) < 2 || c.ne[0] % 32 == 0);
    };
    require(k.type == DType::F32 && v.type == DType::F32 && row_ok(kc) && row_ok(vc) && kc.ne[0] == k.ne[0] &&
                vc.ne[0] == k.ne[0] && v.n_elements() == k.n_elements() && k.ne[0] % 2 == 0 && rows.n_elements() >= n_tok,
            "kv_store", "shapes k " + shape_str(k) + " caches " + shape_str(kc) + " (" + std::string(dtype_name(kc.type)) +
                            ") / " + shape_str(vc) + " (" + std::string(dtype_name(vc.type)) +
                            "); cache types F32, F16, Q8_0, Q4_0 (quantized rows a multiple of 32)");
    PcKvStore pc{};
    pc.width = static_cast<uint32_t>(k.ne[0]);
    pc.n_tokens = static_cast<uint32_t>(n_tok);
    pc.n_cells = static_cast<uint32_t>(std::min(kc.n_rows(), vc.n_rows()));
    pc.k_type = static_cast<uint32_t>(kv_type_code(kc.type));
    pc.v_type = static_cast<uint32_t>(kv_type_code(vc.type));
    uint64_t threads = 2 * uint64_t(ceil_div(pc.width, 32)) * pc.n_tokens;
    dispatch("kv_store", {{&k, false}, {&v, false}, {&kc, true}, {&vc, true}, {&rows, false}}, &pc, sizeof pc,
             ceil_div(threads, 64));
}

void VulkanBackend::attention(const Tensor& q, const Tensor& kc, const Tensor& vc, const Tensor& span,
                              const Tensor& out, const AttentionParams& p) {
    check_tensor(q, "attention", "q");
    check_tensor(kc, "attention", "k_cache");
    check_tensor(vc, "attention", "v_cache");
    check_tensor(span, "attention", "span");
    check_tensor(out, "attention", "out");
    int64_t n_tok = q.ne[2] * q.ne[3];
    require(p.head_dim > 0 && p.head_dim <= 256 && p.head_dim % 2 == 0 && p.n_head_kv > 0 &&
                p.n_head % p.n_head_kv == 0 && q.ne[0] == p.head_dim && q.ne[1] == p.n_head &&
                kc.ne[0] == int64_t(p.head_dim) * p.n_head_kv && vc.ne[0] == kc.ne[0] && kv_type_code(kc.type) >= 0 &&
                kv_type_code(vc.type) >= 0 &&
                ((kv_type_code(kc.type) < 2 && kv_type_code(vc.type) < 2) || p.head_dim % 32 == 0) &&
                out.n_elements() == q.n_elements() &&
                span.type == DType::I32 && span.n_elements() >= 2 * n_tok,
            "attention", "shapes q " + shape_str(q) + " cache " + shape_str(kc) + " head_dim " +
                             std::to_string(p.head_dim) + " heads " + std::to_string(p.n_head) + "/" +
                             std::to_string(p.n_head_kv) + " caches " + std::string(dtype_name(kc.type)) + "/" + std::string(dtype_name(vc.type)) +
                             " (head_dim <= 256; F32, F16, Q8_0, Q4_0 caches, head_dim % 32 == 0 for quantized ones)");
    PcAttention pc{};
    pc.head_dim = static_cast<uint32_t>(p.head_dim);
    pc.n_head = static_cast<uint32_t>(p.n_head);
    pc.n_head_kv = static_cast<uint32_t>(p.n_head_kv);
    pc.n_tokens = static_cast<uint32_t>(n_tok);
    pc.n_cells = static_cast<uint32_t>(std::min(kc.n_rows(), vc.n_rows()));
    pc.scale = p.scale;
    pc.softcap = p.softcap > 0 ? p.softcap : 0.f;

    // The workgroup's query rows: as many heads of one GQA group as fit (so each K/V block is
    // read once for all of them), then as many tokens as fit beside them (a prefill tile).
    const AttentionShape& sh = k_attention_shape;
    const uint32_t shared_bytes = 4 * (sh.qsh + sh.kvsh + sh.ssh + 5 * sh.rmax);
    require(shared_bytes <= ctx_->phys.props.limits.maxComputeSharedMemorySize, "attention",
            "the shader needs " + std::to_string(shared_bytes) + " bytes of shared memory; " + name() + " has " +
                std::to_string(ctx_->phys.props.limits.maxComputeSharedMemorySize));
    const uint32_t hd = pc.head_dim, group = pc.n_head / pc.n_head_kv;
    uint32_t dl = 1;
    while (dl < hd && dl < sh.wg) dl *= 2;  // invocations along head_dim
    uint32_t kn = 1;
    while (kn * dl < hd) kn *= 2;           // elements of a row per invocation
    const uint32_t rmax = std::min({sh.rmax, sh.qsh / hd, sh.accn / kn * (sh.wg / dl)});
    pc.nh = std::min(group, rmax);
    pc.nt = std::clamp<uint32_t>(rmax / pc.nh, 1, std::max<uint32_t>(pc.n_tokens, 1));
    pc.n_hchunk = ceil_div(group, pc.nh);
    const uint32_t rows = pc.nh * pc.nt;
    pc.block = std::min({sh.bmax, sh.kvsh / (hd + 1), sh.ssh / rows});
    pc.dl_shift = static_cast<uint32_t>(std::countr_zero(dl));
    pc.k_shift = static_cast<uint32_t>(std::countr_zero(kn));
    const uint32_t gx = pc.n_head_kv * pc.n_hchunk, gy = ceil_div(std::max<uint32_t>(pc.n_tokens, 1), pc.nt);

    // Too few workgroups to fill the device (decode: one per KV head): split each span into
    // pieces, merged by attention_reduce. Pieces are at least 256 cells of the cache's size.
    uint32_t n_split = 1;
    if (forced_split_) {
        n_split = forced_split_;
    } else {
        const uint32_t target = is_cpu_device() ? 16 : 512;
        const uint32_t base = gx * gy;
        if (base < target) n_split = std::clamp<uint32_t>(target / base, 1, std::clamp<uint32_t>(pc.n_cells / 256, 1, 64));
    }
    pc.n_split = n_split;
    std::string variant = std::string("attention_") + kv_type_part(kc.type) + "_" + kv_type_part(vc.type);
    if (use_subgroups_) variant += "_sg";
    Tensor part;
    part.buffer = dummy_;
    part.ne[0] = 64;
    if (n_split > 1) {
        uint64_t need = uint64_t(n_tok) * pc.n_head * n_split * (pc.head_dim + 2) * 4;
        if (!attn_partial_ || buffers_[attn_partial_ - 1].size < need) {
            if (attn_partial_) retired_.push_back(attn_partial_);
            attn_partial_ = create_buffer(round_up(need, 1 << 20), false);
        }
        part.buffer = attn_partial_;
        part.ne[0] = static_cast<int64_t>(need / 4);
    }
    dispatch(variant, {{&q, false}, {&kc, false}, {&vc, false}, {&span, false}, {&out, true}, {&part, true}}, &pc,
             sizeof pc, gx, gy, n_split);
    if (n_split > 1) {
        PcAttentionReduce rc{};
        rc.head_dim = pc.head_dim;
        rc.n_head = pc.n_head;
        rc.n_tokens = pc.n_tokens;
        rc.n_split = n_split;
        dispatch("attention_reduce", {{&part, false}, {&out, true}}, &rc, sizeof rc, pc.n_head, pc.n_tokens);
    }
}

// out = act(gate) * up elementwise: swiglu.comp and geglu.comp take the same arguments.
void VulkanBackend::gated_unit(const char* op, const Tensor& gate, const Tensor& up, const Tensor& out) {
    check_tensor(gate, op, "gate");
    check_tensor(up, op, "up");
    check_tensor(out, op, "out");
    require(gate.type == DType::F32 && up.type == DType::F32 && out.type == DType::F32 &&
                up.n_elements() == gate.n_elements() && out.n_elements() == gate.n_elements(),
            op, "shapes " + shape_str(gate) + " " + shape_str(up) + " " + shape_str(out));
    PcElementwise pc{};
    pc.n = static_cast<uint32_t>(gate.n_elements());
    dispatch(op, {{&gate, false}, {&up, false}, {&out, true}}, &pc, sizeof pc, ceil_div(pc.n, 256));
}

void VulkanBackend::swiglu(const Tensor& gate, const Tensor& up, const Tensor& out) { gated_unit("swiglu", gate, up, out); }

void VulkanBackend::add(const Tensor& x, const Tensor& y) {
    check_tensor(x, "add", "x");
    check_tensor(y, "add", "y");
    require(x.type == DType::F32 && y.type == DType::F32 && x.n_elements() == y.n_elements(), "add",
            "shapes " + shape_str(x) + " " + shape_str(y));
    PcElementwise pc{};
    pc.n = static_cast<uint32_t>(x.n_elements());
    dispatch("add", {{&x, true}, {&y, false}}, &pc, sizeof pc, ceil_div(pc.n, 256));
}

void VulkanBackend::geglu(const Tensor& gate, const Tensor& up, const Tensor& out) { gated_unit("geglu", gate, up, out); }

void VulkanBackend::add_bias(const Tensor& x, const Tensor& b) {
    check_tensor(x, "add_bias", "x");
    check_tensor(b, "add_bias", "b");
    require(x.type == DType::F32 && b.type == DType::F32 && b.n_elements() == x.ne[0], "add_bias",
            "shapes x " + shape_str(x) + " b " + shape_str(b) + " (b must have x's row length)");
    PcAddBias pc{};
    pc.n = static_cast<uint32_t>(x.n_elements());
    pc.dim = static_cast<uint32_t>(x.ne[0]);
    dispatch("add_bias", {{&x, true}, {&b, false}}, &pc, sizeof pc, ceil_div(pc.n, 256));
}

void VulkanBackend::scale(const Tensor& x, float s) {
    check_tensor(x, "scale", "x");
    require(x.type == DType::F32, "scale", "x must be F32, got " + std::string(dtype_name(x.type)));
    PcScalarOp pc{};
    pc.n = static_cast<uint32_t>(x.n_elements());
    pc.s = s;
    dispatch("scale", {{&x, true}}, &pc, sizeof pc, ceil_div(pc.n, 256));
}

void VulkanBackend::softcap(const Tensor& x, float cap) {
    check_tensor(x, "softcap", "x");
    require(x.type == DType::F32, "softcap", "x must be F32, got " + std::string(dtype_name(x.type)));
    require(cap > 0 && std::isfinite(cap), "softcap", "cap must be a positive number, got " + std::to_string(cap));
    PcScalarOp pc{};
    pc.n = static_cast<uint32_t>(x.n_elements());
    pc.s = cap;
    dispatch("softcap", {{&x, true}}, &pc, sizeof pc, ceil_div(pc.n, 256));
}

void VulkanBackend::moe_route(const Tensor& logits, const Tensor& ids, const Tensor& weights) {
    check_tensor(logits, "moe_route", "logits");
    check_tensor(ids, "moe_route", "ids");
    check_tensor(weights, "moe_route", "weights");
    const int64_t k = ids.ne[0], n = logits.n_rows();
    require(logits.type == DType::F32 && ids.type == DType::I32 && weights.type == DType::F32 && k <= logits.ne[0] &&
                ids.n_rows() == n && weights.ne[0] == k && weights.n_rows() == n,
            "moe_route", "shapes logits " + shape_str(logits) + " ids " + shape_str(ids) + " weights " +
                             shape_str(weights) + " (k = ids.ne[0] <= E = logits.ne[0])");
    PcMoeRoute pc{};
    pc.n_expert = static_cast<uint32_t>(logits.ne[0]);
    pc.k = static_cast<uint32_t>(k);
    pc.n = static_cast<uint32_t>(n);
    dispatch("moe_route", {{&logits, false}, {&ids, true}, {&weights, true}}, &pc, sizeof pc, ceil_div(pc.n, 64));
}

void VulkanBackend::matmul_id(const Tensor& w, const Tensor& x, const Tensor& ids, const Tensor& out) {
    check_tensor(w, "matmul_id", "w");
    check_tensor(x, "matmul_id", "x");
    check_tensor(ids, "matmul_id", "ids");
    check_tensor(out, "matmul_id", "out");
    const int64_t k = ids.ne[0], n = ids.n_rows();
    const bool per_slot = x.n_rows() == k * n && x.ne[1] == k;
    require(w.ne[3] == 1 && x.type == DType::F32 && ids.type == DType::I32 && out.type == DType::F32 &&
                x.ne[0] == w.ne[0] && (per_slot || x.n_rows() == n) && out.ne[0] == w.ne[1] && out.ne[1] == k &&
                out.n_rows() == k * n,
            "matmul_id", "shapes w " + shape_str(w) + " x " + shape_str(x) + " ids " + shape_str(ids) + " out " +
                             shape_str(out) + " (w [n_in, m, E], x [n_in, n] or [n_in, k, n], out [m, k, n])");
    PcMatmulId pc{};
    pc.k = static_cast<uint32_t>(w.ne[0]);
    pc.m = static_cast<uint32_t>(w.ne[1]);
    pc.n = 1;
    pc.row_bytes = static_cast<uint32_t>(w.row_size());
    pc.n_slots = static_cast<uint32_t>(k);
    pc.x_per_slot = per_slot ? 1 : 0;
    pc.n_expert = static_cast<uint32_t>(w.ne[2]);
    pc.expert_bytes = static_cast<uint32_t>(w.row_size() * static_cast<uint64_t>(w.ne[1]));
    const uint64_t pairs = uint64_t(k) * n;
    const uint64_t max_z = ctx_->phys.props.limits.maxComputeWorkGroupCount[2];

    // A batch: group the pairs by expert on the GPU (moe_group.comp), then each workgroup
    // multiplies one expert's row tile with a tile of that expert's pairs, so each expert's
    // weights are read once per tile of its pairs (64 on GPUs, 8 on CPU devices) rather than once
    // per pair. The grid is the worst case, ceil(pairs / tile) + E tiles; experts own their tiles
    // through prefix sums, so an expert without pairs costs nothing. moe_group.comp keeps its
    // counts in shared memory (E <= 256), z is limited by the device and one workgroup scatters
    // all the pairs (at most 2^24 here): beyond, the per-pair path.
    const uint32_t tile = cpu_shapes_ ? 8 : 64;  // matvec.comp NMAX, matmul.comp BN
    const uint64_t max_tiles = ceil_div(pairs, tile) + std::min<uint64_t>(pc.n_expert, pairs);
    if (n > 1 && moe_grouping_ && pc.n_expert <= 256 && max_tiles <= max_z && pairs <= (1u << 24)) {
        const uint64_t need = (3ull * pc.n_expert + 1 + pairs) * 4;
        if (!moe_groups_ || buffers_[moe_groups_ - 1].size < need) {
            if (moe_groups_) retired_.push_back(moe_groups_);
            moe_groups_ = create_buffer(round_up(need, 1 << 20), false);
        }
        Tensor groups;
        groups.buffer = moe_groups_;
        groups.type = DType::I32;
        groups.ne[0] = static_cast<int64_t>(need / 4);
        PcMoeGroup gc{};
        gc.n_expert = pc.n_expert;
        gc.n_pairs = static_cast<uint32_t>(pairs);
        gc.tile = tile;
        dispatch("moe_group", {{&ids, false}, {&groups, true}}, &gc, sizeof gc, 1);
        std::string variant = weight_variant("matmul_id", w.type) + "_grouped";
        uint32_t gx = ceil_div(pc.m, 64);  // matmul.comp BM
        if (cpu_shapes_) {
            variant += "_rows";
            gx = ceil_div(pc.m, 64 * 4);  // matvec.comp RPI 4
        }
        pc.n = 0;
        dispatch(variant, {{&w, false}, {&x, false}, {&out, true}, {&groups, false}}, &pc, sizeof pc, gx, 1,
                 static_cast<uint32_t>(max_tiles));
        return;
    }

    // Decode: one workgroup column (z) per (token, slot) pair, each a matrix-vector product with
    // its expert's matrix; the row shapes are matmul()'s for n = 1.
    std::string variant = weight_variant("matmul_id", w.type);
    uint32_t gx = pc.m;
    const uint32_t units = ceil_div(pc.k, 32);
    if (cpu_shapes_ || units <= 8) {
        variant += "_rows";
        gx = ceil_div(pc.m, 64 * 4);  // matvec.comp RPI 4
    } else if (use_subgroups_) {
        variant += "_sg";
        uint32_t sg = std::max<uint32_t>(1, ctx_->phys.subgroup_size);
        pc.rows_per_wg = std::max<uint32_t>(1, 64 / sg) * (ctx_->phys.rank() == 3 ? 4 : 1);
        gx = ceil_div(pc.m, pc.rows_per_wg);
    }
    for (uint64_t p0 = 0; p0 < pairs; p0 += max_z) {
        pc.pair0 = static_cast<uint32_t>(p0);
        dispatch(variant, {{&w, false}, {&x, false}, {&out, true}, {&ids, false}}, &pc, sizeof pc, gx, 1,
                 static_cast<uint32_t>(std::min(max_z, pairs - p0)));
    }
}

void VulkanBackend::moe_sum(const Tensor& y, const Tensor& weights, const Tensor& out) {
    check_tensor(y, "moe_sum", "y");
    check_tensor(weights, "moe_sum", "weights");
    check_tensor(out, "moe_sum", "out");
    const int64_t k = weights.ne[0], n = weights.n_rows();
    require(y.type == DType::F32 && weights.type == DType::F32 && out.type == DType::F32 && y.ne[1] == k &&
                y.n_rows() == k * n && out.ne[0] == y.ne[0] && out.n_rows() == n,
            "moe_sum", "shapes y " + shape_str(y) + " weights " + shape_str(weights) + " out " + shape_str(out) +
                           " (y [d, k, n], weights [k, n], out [d, n])");
    PcMoeSum pc{};
    pc.d = static_cast<uint32_t>(y.ne[0]);
    pc.k = static_cast<uint32_t>(k);
    pc.n = static_cast<uint32_t>(n);
    dispatch("moe_sum", {{&y, false}, {&weights, false}, {&out, true}}, &pc, sizeof pc,
             ceil_div(uint64_t(pc.d) * pc.n, 256));
}

void VulkanBackend::gather_rows(const Tensor& x, const Tensor& rows, const Tensor& out) {
    check_tensor(x, "gather_rows", "x");
    check_tensor(rows, "gather_rows", "rows");
    check_tensor(out, "gather_rows", "out");
    int64_t n = rows.n_elements();
    require(x.type == DType::F32 && out.type == DType::F32 && rows.type == DType::I32 && out.ne[0] == x.ne[0] &&
                out.n_rows() >= n,
            "gather_rows", "shapes x " + shape_str(x) + " rows " + shape_str(rows) + " out " + shape_str(out));
    PcGatherRows pc{};
    pc.width = static_cast<uint32_t>(x.ne[0]);
    pc.n = static_cast<uint32_t>(n);
    pc.n_src = static_cast<uint32_t>(x.n_rows());
    dispatch("gather_rows", {{&x, false}, {&rows, false}, {&out, true}}, &pc, sizeof pc,
             ceil_div(uint64_t(pc.width) * pc.n, 256));
}

}  // namespace minerva::vk

namespace minerva {

// Declared and called by kernels/backend.cpp. "vulkan" picks the best device; "vulkan:N" the
// N-th of `minerva devices`. required=false ("auto") returns nullptr when there is no device or
// only a CPU-type one.
std::unique_ptr<Backend> make_vulkan_backend(const std::string& device, bool required) {
    int index = -1;
    if (device.rfind("vulkan:", 0) == 0) {
        std::string n = device.substr(7);
        if (n.empty() || n.size() > 4 || !std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; }))
            throw Error("bad device '" + device + "': expected vulkan:N with N a device number (see `minerva devices`)");
        index = std::stoi(n);
    } else if (device != "vulkan") {
        throw Error("bad device '" + device + "' for the Vulkan backend");
    }
    auto ctx = vk::Context::create(index, required);
    if (!ctx) return nullptr;
    auto b = std::make_unique<vk::VulkanBackend>(std::move(ctx));
    logging::info("using {}", b->name());
    return b;
}

}  // namespace minerva
