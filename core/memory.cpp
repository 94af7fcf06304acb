#include "core/memory.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstdlib>
#include <mutex>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "core/config.hpp"

namespace tapegrad {

namespace {

// Size classes: 64 bytes, then four per power of two: 2^k + j * 2^(k-2) for j = 1..4. Classes
// up to 64 KiB are small (the per-thread lists and the shared pool); above are large (the large
// cache); above 2^47 bytes there is no class and the request goes to the system as it is.
constexpr unsigned min_log = 6;     // 64 bytes
constexpr unsigned small_log = 16;  // 64 KiB
constexpr unsigned max_log = 47;
constexpr std::size_t num_classes = 1 + (small_log - min_log) * 4;  // small ones
constexpr std::size_t num_all_classes = 1 + (max_log - min_log) * 4;
constexpr std::size_t small_bytes = std::size_t{1} << small_log;

struct Class {
    std::size_t index = 0;
    std::size_t bytes = 0;  // 0: no class
};

Class class_of(std::size_t bytes) {
    if (bytes <= (std::size_t{1} << min_log)) return {0, std::size_t{1} << min_log};
    if (bytes > (std::size_t{1} << max_log)) return {};
    const unsigned k =
        static_cast<unsigned>(std::bit_width(bytes - 1)) - 1;  // 2^k < bytes <= 2^(k+1)
    const std::size_t step = std::size_t{1} << (k - 2);
    const std::size_t j = (bytes - (std::size_t{1} << k) + step - 1) / step;  // 1..4
    return {1 + (k - min_log) * 4 + (j - 1), (std::size_t{1} << k) + j * step};
}

std::size_t class_of_index(std::size_t i) {
    if (i == 0) return std::size_t{1} << min_log;
    const std::size_t k = min_log + (i - 1) / 4, j = 1 + (i - 1) % 4;
    return (std::size_t{1} << k) + j * (std::size_t{1} << (k - 2));
}

std::atomic<std::size_t>& limit() {
    static std::atomic<std::size_t> bytes{switches().buffer_cache_bytes};
    return bytes;
}

// What one thread keeps for itself; beyond it, freed buffers go to the shared pool, where
// any thread finds them. Small, so a thread that frees what another allocated (a shard's
// gradients summed on the calling thread) does not hoard buffers the other keeps asking for.
constexpr std::size_t thread_share = std::size_t{8} << 20;

struct Lists {
    std::array<std::vector<void*>, num_classes> free;
    std::size_t bytes = 0;

    void* pop(const Class& c) {
        auto& list = free[c.index];
        if (list.empty()) return nullptr;
        void* p = list.back();
        list.pop_back();
        bytes -= c.bytes;
        return p;
    }
    bool push(void* p, const Class& c) noexcept {
        try {
            free[c.index].push_back(p);
        } catch (...) {
            return false;
        }
        bytes += c.bytes;
        return true;
    }
    void drop() noexcept {
        for (auto& list : free) {
            for (void* p : list) std::free(p);
            list.clear();
        }
        bytes = 0;
    }
};

struct ThreadCache : Lists {
    std::uint64_t hits = 0, misses = 0;
    ~ThreadCache();
};

// The pool shared by all threads, up to the limit.
struct SharedPool : Lists {
    std::mutex mutex;
};

// Never destroyed: threads that exit after static destruction (TBB's workers) still hand
// their caches to it.
SharedPool& shared() {
    static SharedPool* pool = new SharedPool;
    return *pool;
}

// Set once the thread's cache is destroyed (at thread exit): buffers freed after that, by
// other thread_local or static objects, go to the shared pool or straight to free().
thread_local bool cache_gone = false;

ThreadCache& cache() {
    thread_local ThreadCache c;
    return c;
}

void* take_shared(const Class& c) {
    SharedPool& pool = shared();
    std::lock_guard lock(pool.mutex);
    return pool.pop(c);
}

void give_shared(void* p, const Class& c) noexcept {
    SharedPool& pool = shared();
    {
        std::lock_guard lock(pool.mutex);
        const std::size_t cap = buffer_cache_limit();
        if (pool.bytes + c.bytes > cap) pool.drop();  // start afresh rather than keep stale sizes
        if (c.bytes <= cap && pool.push(p, c)) return;
    }
    std::free(p);
}

ThreadCache::~ThreadCache() {
    cache_gone = true;
    for (std::size_t i = 0; i < num_classes; ++i)
        for (void* p : free[i]) give_shared(p, Class{i, class_of_index(i)});
    for (auto& list : free) list.clear();
    bytes = 0;
}

// ---- large buffers (over 64 KiB)

// (posix_memalign: aligned_alloc wants a multiple of the alignment, which 80 bytes is not.)
void* system_acquire(const Class& c) {
    void* p = nullptr;
    if (posix_memalign(&p, buffers::alignment, c.bytes) != 0 || !p) throw std::bad_alloc();
    return p;
}

// Freed large blocks by class, shared by all threads, up to large_cache_limit() bytes; a free
// that would pass the limit first returns the least recently freed blocks to the system.
struct LargeCache {
    struct Block {
        void* p;
        std::uint64_t freed;  // when, on the cache's clock
    };
    std::mutex mutex;
    std::array<std::vector<Block>, num_all_classes> free;  // oldest first in each list
    std::size_t bytes = 0;
    std::uint64_t clock = 0;

    // Takes blocks out, oldest first, until `room` more bytes fit under `cap`; the caller
    // returns them to the system outside the lock.
    void evict(std::size_t room, std::size_t cap, std::vector<void*>& out) {
        while (bytes > 0 && bytes + room > cap) {
            std::size_t oldest = num_all_classes;
            for (std::size_t i = 0; i < num_all_classes; ++i)
                if (!free[i].empty() && (oldest == num_all_classes ||
                                         free[i].front().freed < free[oldest].front().freed))
                    oldest = i;
            out.push_back(free[oldest].front().p);
            free[oldest].erase(free[oldest].begin());
            bytes -= class_of_index(oldest);
        }
    }
};

LargeCache& large() {
    static LargeCache* cache = new LargeCache;  // never destroyed, as the shared pool
    return *cache;
}

std::atomic<std::size_t>& large_limit() {
    static std::atomic<std::size_t> bytes{switches().large_cache_bytes};
    return bytes;
}

void* take_large(const Class& c) {
    LargeCache& cache = large();
    std::lock_guard lock(cache.mutex);
    auto& list = cache.free[c.index];
    if (list.empty()) return nullptr;
    void* p = list.back().p;  // the most recently freed: its pages are the likeliest mapped
    list.pop_back();
    cache.bytes -= c.bytes;
    return p;
}

void give_large(void* p, const Class& c) noexcept {
    std::vector<void*> evicted;
    bool kept = false;
    {
        LargeCache& cache = large();
        std::lock_guard lock(cache.mutex);
        const std::size_t cap = large_cache_limit();
        if (c.bytes <= cap) {
            try {
                cache.evict(c.bytes, cap, evicted);
                cache.free[c.index].push_back({p, ++cache.clock});
                cache.bytes += c.bytes;
                kept = true;
            } catch (...) {  // no room for the list entry: give the block back instead
            }
        }
    }
    for (void* q : evicted) std::free(q);
    if (!kept) std::free(p);
}

void drop_large(std::size_t cap) noexcept {
    std::vector<void*> evicted;
    {
        LargeCache& cache = large();
        std::lock_guard lock(cache.mutex);
        try {
            cache.evict(0, cap, evicted);
        } catch (...) {}
    }
    for (void* q : evicted) std::free(q);
}

}  // namespace

MallocTuning tune_malloc() {
    MallocTuning t;
    // (AddressSanitizer replaces malloc: mallopt has nothing to tune there)
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
    if (!switches().malloc_tuning) return t;
    t.mmap_threshold = std::size_t{32} << 20;  // glibc's own upper bound for its dynamic threshold
    t.trim_threshold = std::size_t{256} << 20;
    t.top_pad = std::size_t{16} << 20;
    t.applied = mallopt(M_MMAP_THRESHOLD, static_cast<int>(t.mmap_threshold)) == 1 &&
                mallopt(M_TRIM_THRESHOLD, static_cast<int>(t.trim_threshold)) == 1 &&
                mallopt(M_TOP_PAD, static_cast<int>(t.top_pad)) == 1;
#endif
    return t;
}

void set_buffer_cache_limit(std::size_t bytes) {
    limit().store(bytes, std::memory_order_relaxed);
    if (!cache_gone && cache().bytes > std::min(bytes, thread_share)) cache().drop();
    SharedPool& pool = shared();
    std::lock_guard lock(pool.mutex);
    if (pool.bytes > bytes) pool.drop();
}

std::size_t buffer_cache_limit() { return limit().load(std::memory_order_relaxed); }

void set_large_cache_limit(std::size_t bytes) {
    large_limit().store(bytes, std::memory_order_relaxed);
    drop_large(bytes);
}

std::size_t large_cache_limit() { return large_limit().load(std::memory_order_relaxed); }

namespace buffers {

std::size_t class_bytes(std::size_t bytes) { return class_of(bytes).bytes; }

void* acquire(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    const Class c = class_of(bytes);
    if (c.bytes == 0) throw std::bad_alloc();  // over 2^47 bytes
    ThreadCache* tc = cache_gone ? nullptr : &cache();
    void* p = nullptr;
    if (c.bytes > small_bytes) {
        p = take_large(c);
    } else {
        p = tc ? tc->pop(c) : nullptr;
        if (!p) p = take_shared(c);
    }
    if (tc) ++(p ? tc->hits : tc->misses);
    // Always the class's size, so the buffer can serve any request of its class later.
    return p ? p : system_acquire(c);
}

void release(void* p, std::size_t bytes) noexcept {
    if (!p) return;
    const Class c = class_of(bytes);
    if (c.bytes > small_bytes) {
        give_large(p, c);
        return;
    }
    if (!cache_gone) {
        ThreadCache& tc = cache();
        if (tc.bytes + c.bytes <= std::min(buffer_cache_limit(), thread_share) && tc.push(p, c))
            return;
    }
    give_shared(p, c);
}

CacheStats stats() {
    CacheStats s;
    if (!cache_gone) {
        const ThreadCache& tc = cache();
        s = {tc.hits, tc.misses, tc.bytes};
    }
    SharedPool& pool = shared();
    {
        std::lock_guard lock(pool.mutex);
        s.shared_bytes = pool.bytes;
    }
    LargeCache& big = large();
    std::lock_guard lock(big.mutex);
    s.large_bytes = big.bytes;
    return s;
}

void trim() {
    if (!cache_gone) cache().drop();
    {
        SharedPool& pool = shared();
        std::lock_guard lock(pool.mutex);
        pool.drop();
    }
    drop_large(0);
}

}  // namespace buffers

}  // namespace tapegrad
