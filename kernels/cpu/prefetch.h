// kernels/cpu/prefetch.h (internal): the software prefetch of the decode row kernels.
//
// A row kernel reads R consecutive weight rows at a time, block by block; one row is a short
// stream (576 bytes for a 1024-wide Q4_K row) that the hardware prefetchers hardly ramp up on.
// So each kernel, as it reads a block, fetches
//   - into L1 the same block of the next group of R rows (group_bytes = R * row stride on), and
//   - into L2 the same block of a group further on, at least kPrefetchAhead bytes ahead, so that
//     enough cache-line misses are in flight for one core to stream at its memory bandwidth.
// The groups of a thread's rows are contiguous, so both streams cover every byte once. The far
// prefetch took the row kernels from 18-23 to 31-34 GB/s with 2 threads on the 2-core EPYC (Zen 4)
// (docs/performance.md, "Decode"); MINERVA_PREFETCH_BYTES sets the distance (0: no L2 prefetch).
#pragma once
#include <xmmintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>

namespace minerva::cpu {

constexpr size_t kPrefetchAhead = 12288;

inline size_t prefetch_ahead_bytes() {
    static const size_t ahead = [] {
        const char* e = std::getenv("MINERVA_PREFETCH_BYTES");
        if (!e || !*e) return kPrefetchAhead;
        char* end = nullptr;
        const long long v = std::strtoll(e, &end, 10);
        return (*end == 0 && v >= 0 && v <= (1 << 24)) ? static_cast<size_t>(v) : kPrefetchAhead;
    }();
    return ahead;
}

// The far distance for groups of group_bytes: a whole number of groups, 0 when there is none.
inline size_t prefetch_far(size_t group_bytes) {
    const size_t ahead = prefetch_ahead_bytes();
    if (ahead <= group_bytes) return 0;
    return (ahead + group_bytes - 1) / group_bytes * group_bytes;
}

// Fetches the N bytes at p + near into L1 and, when far > 0, those at p + far into L2.
template <size_t N>
inline void prefetch_block(const uint8_t* p, size_t near, size_t far) {
    for (size_t o = 0; o < N; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + near + o), _MM_HINT_T0);
    if (far)
        for (size_t o = 0; o < N; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + far + o), _MM_HINT_T1);
}

inline void prefetch_block(const uint8_t* p, size_t n, size_t near, size_t far) {
    for (size_t o = 0; o < n; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + near + o), _MM_HINT_T0);
    if (far)
        for (size_t o = 0; o < n; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + far + o), _MM_HINT_T1);
}

// Fetches [p, p + n) into L2.
inline void prefetch_l2(const uint8_t* p, size_t n) {
    for (size_t o = 0; o < n; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + o), _MM_HINT_T1);
}

}  // namespace minerva::cpu
