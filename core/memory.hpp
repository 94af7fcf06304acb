// Where tensor buffers come from.
//
// Every tensor's elements live in an Array<T>: an xtensor xarray whose allocator is
// BufferAllocator, a cache of freed buffers in front of malloc. A training step frees and
// reallocates the same buffers every step. Through xsimd's aligned allocator each of those went
// to glibc's posix_memalign, which takes the arena lock, splits off and frees the padding, and
// coalesces on free: 6% of a small-RNN step on one shard, 10% on two (perf). The cache keeps
// freed buffers of up to 64 KiB in size classes (64 bytes, then four per power of two, so at
// most 25% above the request) and hands them to the next request of the same class (larger
// buffers, where the call's cost is small beside the work, go to malloc):
//   - each thread keeps up to 8 MiB for itself, without a lock;
//   - beyond that, freed buffers go to a pool shared by all threads (one mutex), which is also
//     where a thread looks when its own list is empty. A buffer freed on another thread than
//     the one that allocated it (a shard's gradient summed on the calling thread) thus finds
//     its way back instead of piling up on the freeing thread;
//   - the pool holds at most buffer_cache_limit() bytes; a free that would pass the limit
//     first returns the whole pool to malloc, so a workload whose shapes change does not keep
//     stale sizes. A thread's own buffers go to the pool when the thread exits.
// TAPEGRAD_BUFFER_CACHE_MIB in the environment sets the limit at start-up (core/config.hpp;
// default 256; 0 turns the cache off, the default under AddressSanitizer, so that it sees
// every free). PyTorch's caching allocator does the same for its device tensors.
//
// Larger buffers (a scan's [T, B, H] temporaries) keep the same classes in a second cache,
// shared by all threads, of at most large_cache_limit() bytes (TAPEGRAD_LARGE_CACHE_MIB; a
// quarter of the machine's memory by default, 0 under AddressSanitizer). A free that would pass
// it first returns the least recently freed blocks. Without it, glibc gives blocks over its mmap
// threshold back to the kernel, and the next step faults each page in afresh: at T = 10,000 a
// minGRU step took twice as long per time step as at T = 1000.
//
// glibc itself: tune_malloc() raises its mmap and trim thresholds (mallopt), so large blocks
// freed by one step are reused by the next instead of page-faulting afresh. It changes malloc
// for the whole process, so tapegrad never calls it on its own: a program opts in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <utility>

#include <xtensor/xarray.hpp>

namespace tapegrad {

struct MallocTuning {
    bool applied = false;            // false: TAPEGRAD_MALLOC_TUNING=0, not glibc, or refused
    std::size_t mmap_threshold = 0;  // blocks up to this size come from the heap
    std::size_t trim_threshold = 0;  // free memory kept at the heap's top before trimming
    std::size_t top_pad = 0;         // extra memory asked of the kernel when the heap grows
};

// Sets glibc's M_MMAP_THRESHOLD to 32 MiB, M_TRIM_THRESHOLD to 256 MiB and M_TOP_PAD to
// 16 MiB, for the whole process; call it at the start of main(). Returns what it set: nothing
// under TAPEGRAD_MALLOC_TUNING=0, with another C library, or under AddressSanitizer.
MallocTuning tune_malloc();

namespace buffers {

inline constexpr std::size_t alignment = 64;  // every buffer starts on a cache line

// A buffer of at least `bytes` (nullptr for 0), aligned to `alignment`; std::bad_alloc when
// memory runs out. Give it back with release(p, bytes) with the same byte count.
void* acquire(std::size_t bytes);
void release(void* p, std::size_t bytes) noexcept;

// The size a request of `bytes` is served with (its class; at most 25% above), or 0 above 2^47.
std::size_t class_bytes(std::size_t bytes);

struct CacheStats {
    std::uint64_t hits = 0;        // the calling thread's requests served from a cache
    std::uint64_t misses = 0;      // ... and those that went to malloc
    std::size_t cached_bytes = 0;  // held by the calling thread's cache, ready for reuse
    std::size_t shared_bytes = 0;  // held by the shared pool
    std::size_t large_bytes = 0;   // held by the large-buffer cache
};
CacheStats stats();
void trim();  // returns the calling thread's cached buffers, the shared pool's and the large ones

}  // namespace buffers

// Bytes the shared pool may hold, and the most a thread keeps (0: no caching); lasts until the
// next call.
void set_buffer_cache_limit(std::size_t bytes);
std::size_t buffer_cache_limit();

// Bytes the large-buffer cache may hold (0: none); lasts until the next call.
void set_large_cache_limit(std::size_t bytes);
std::size_t large_cache_limit();

// The allocator of every tensor's storage (see above); all instances are interchangeable.
template <class T>
struct BufferAllocator {
    using value_type = T;
    BufferAllocator() noexcept = default;
    template <class U>
    BufferAllocator(const BufferAllocator<U>&) noexcept {}
    T* allocate(std::size_t n) {
        if (n > std::numeric_limits<std::size_t>::max() / sizeof(T))
            throw std::bad_array_new_length();
        return static_cast<T*>(buffers::acquire(n * sizeof(T)));
    }
    void deallocate(T* p, std::size_t n) noexcept { buffers::release(p, n * sizeof(T)); }
    friend bool operator==(const BufferAllocator&, const BufferAllocator&) noexcept { return true; }
};

// A shared object whose block (control block included) comes from the same cache: a step
// makes and frees hundreds of tensors' storages, variables and tape entries' input lists,
// more than glibc's per-thread cache keeps (7 a size), which then coalesces and splits them.
template <class T, class... Args>
std::shared_ptr<T> make_cached(Args&&... args) {
    return std::allocate_shared<T>(BufferAllocator<T>{}, std::forward<Args>(args)...);
}

// The array type a tensor holds. Any xtensor expression converts to it.
template <class T>
using Array = xt::xarray<T, XTENSOR_DEFAULT_LAYOUT, BufferAllocator<T>>;

}  // namespace tapegrad
