// core/memory: the buffer cache behind every tensor's storage.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>

#include <unistd.h>

#include <tapegrad/core/config.hpp>
#include <tapegrad/tapegrad.hpp>

using namespace tapegrad;

namespace {

// Restores the cache limit a test changed.
struct LimitGuard {
    std::size_t saved = buffer_cache_limit();
    ~LimitGuard() { set_buffer_cache_limit(saved); }
};

struct LargeLimitGuard {
    std::size_t saved = large_cache_limit();
    ~LargeLimitGuard() { set_large_cache_limit(saved); }
};

bool aligned(const void* p) {
    return reinterpret_cast<std::uintptr_t>(p) % buffers::alignment == 0;
}

}  // namespace

TEST_CASE("memory: size classes hold the request and waste at most a quarter") {
    CHECK(buffers::class_bytes(1) == 64);
    CHECK(buffers::class_bytes(64) == 64);
    CHECK(buffers::class_bytes(65) == 80);
    CHECK(buffers::class_bytes(128) == 128);
    CHECK(buffers::class_bytes(129) == 160);
    CHECK(buffers::class_bytes(8192) == 8192);
    CHECK(buffers::class_bytes(8193) == 10240);
    CHECK(buffers::class_bytes(std::size_t{64} << 10) == std::size_t{64} << 10);
    CHECK(buffers::class_bytes((std::size_t{64} << 10) + 1) == std::size_t{80} << 10);
    CHECK(buffers::class_bytes(std::size_t{33} << 20) == std::size_t{40} << 20);
    CHECK(buffers::class_bytes((std::size_t{1} << 47) + 1) == 0);  // no class: bad_alloc
    CHECK_THROWS_AS(buffers::acquire((std::size_t{1} << 47) + 1), std::bad_alloc);
    for (std::size_t b = 1; b <= (std::size_t{1} << 40); b = b * 3 / 2 + 7) {
        const std::size_t c = buffers::class_bytes(b);
        CHECK(c >= b);
        CHECK((b <= 64 || 4 * c <= 5 * b + 4 * 64));  // within 25% above b
        CHECK(buffers::class_bytes(c) == c);          // a class is its own class
    }
}

TEST_CASE("memory: a freed buffer serves the next request of its class on the same thread") {
    LimitGuard guard;
    set_buffer_cache_limit(std::size_t{64} << 20);
    buffers::trim();
    void* a = buffers::acquire(10000);
    REQUIRE(a != nullptr);
    CHECK(aligned(a));
    static_cast<char*>(a)[buffers::class_bytes(10000) - 1] = 1;  // the whole class is usable
    buffers::release(a, 10000);
    const auto before = buffers::stats();
    CHECK(before.cached_bytes == buffers::class_bytes(10000));
    void* b = buffers::acquire(10200);  // same class (10240)
    CHECK(b == a);
    CHECK(buffers::stats().hits == before.hits + 1);
    CHECK(buffers::stats().cached_bytes == 0);
    void* c = buffers::acquire(20000);  // another class: from malloc
    CHECK(c != a);
    CHECK(aligned(c));
    CHECK(buffers::stats().misses == before.misses + 1);
    buffers::release(b, 10200);
    buffers::release(c, 20000);
    CHECK(buffers::acquire(0) == nullptr);
    buffers::release(nullptr, 0);  // no-op
    buffers::trim();
    CHECK(buffers::stats().cached_bytes == 0);
    CHECK(buffers::stats().shared_bytes == 0);
}

TEST_CASE("memory: limit 0 caches nothing; buffers above 64 KiB go to the large cache") {
    LimitGuard guard;
    LargeLimitGuard large_guard;
    set_buffer_cache_limit(0);
    void* a = buffers::acquire(4096);
    CHECK(aligned(a));
    buffers::release(a, 4096);
    CHECK(buffers::stats().cached_bytes == 0);
    CHECK(buffers::stats().shared_bytes == 0);

    set_buffer_cache_limit(std::size_t{1} << 30);
    set_large_cache_limit(std::size_t{1} << 30);
    buffers::trim();
    const std::size_t big = (std::size_t{64} << 10) + 64;
    void* p = buffers::acquire(big);
    CHECK(aligned(p));
    buffers::release(p, big);
    CHECK(buffers::stats().cached_bytes == 0);  // not the small lists
    CHECK(buffers::stats().shared_bytes == 0);
    CHECK(buffers::stats().large_bytes == buffers::class_bytes(big));
    set_large_cache_limit(0);  // a lower limit returns what it no longer allows
    CHECK(buffers::stats().large_bytes == 0);
    void* q = buffers::acquire(big);
    buffers::release(q, big);
    CHECK(buffers::stats().large_bytes == 0);
}

TEST_CASE("memory: a freed large buffer serves the next request of its class, on any thread") {
    LargeLimitGuard guard;
    set_large_cache_limit(std::size_t{256} << 20);
    buffers::trim();
    const std::size_t bytes = std::size_t{5} << 20;  // class 5 MiB
    void* a = buffers::acquire(bytes);
    CHECK(aligned(a));
    static_cast<char*>(a)[buffers::class_bytes(bytes) - 1] = 1;  // the whole class is usable
    std::thread([&] { buffers::release(a, bytes); }).join();
    CHECK(buffers::stats().large_bytes == buffers::class_bytes(bytes));
    const auto before = buffers::stats();
    void* b = buffers::acquire(bytes - 1000);  // same class
    CHECK(b == a);
    CHECK(buffers::stats().hits == before.hits + 1);
    CHECK(buffers::stats().large_bytes == 0);
    buffers::release(b, bytes - 1000);
    buffers::trim();
    CHECK(buffers::stats().large_bytes == 0);
}

TEST_CASE("memory: the large cache stays within its limit and returns the oldest blocks first") {
    LargeLimitGuard guard;
    buffers::trim();
    const std::size_t one = std::size_t{1} << 20, two = std::size_t{2} << 20;
    set_large_cache_limit(4 * one);
    void* a = buffers::acquire(one);
    void* b = buffers::acquire(two);
    void* c = buffers::acquire(one);
    void* d = buffers::acquire(two);
    buffers::release(a, one);  // oldest
    buffers::release(b, two);
    buffers::release(c, one);  // 4 MiB held: at the limit
    CHECK(buffers::stats().large_bytes == 4 * one);
    buffers::release(d, two);  // evicts a (1 MiB, too little), then b
    CHECK(buffers::stats().large_bytes == one + two);
    CHECK(buffers::acquire(two) == d);  // d and c remain; a and b went back to the system
    CHECK(buffers::acquire(one) == c);
    CHECK(buffers::stats().large_bytes == 0);
    buffers::release(c, one);
    buffers::release(d, two);
    void* huge = buffers::acquire(8 * one);  // larger than the limit: never kept
    buffers::release(huge, 8 * one);
    CHECK(buffers::stats().large_bytes == one + two);
    buffers::trim();
}

TEST_CASE(
    "memory: buffers freed on another thread reach the allocating thread through the shared pool") {
    LimitGuard guard;
    set_buffer_cache_limit(std::size_t{256} << 20);
    buffers::trim();
    // One thread allocates, another frees, many times: the freeing thread keeps at most its
    // own share and hands the rest to the pool, so the allocating thread stops calling malloc.
    const std::size_t bytes = std::size_t{64} << 10,
                      n = 256;  // 16 MiB in all, more than a thread's share
    std::vector<void*> blocks;
    for (int round = 0; round < 4; ++round) {
        for (std::size_t i = 0; i < n; ++i) blocks.push_back(buffers::acquire(bytes));
        std::thread([&] {
            for (void* p : blocks) buffers::release(p, bytes);
            CHECK(buffers::stats().cached_bytes <= std::size_t{8} << 20);
        }).join();
        blocks.clear();
    }
    const auto s = buffers::stats();
    CHECK(s.shared_bytes >=
          n * bytes - (std::size_t{8} << 20));  // what it did not keep (it exited: all of it)
    const auto misses = s.misses;
    for (std::size_t i = 0; i < n; ++i) blocks.push_back(buffers::acquire(bytes));
    CHECK(buffers::stats().misses == misses);  // every one came back from the pool
    for (void* p : blocks) buffers::release(p, bytes);
    buffers::trim();
}

TEST_CASE("memory: the shared pool stays within the limit") {
    LimitGuard guard;
    buffers::trim();
    const std::size_t bytes = std::size_t{64} << 10;
    set_buffer_cache_limit(4 * bytes);  // below a thread's share: the pool takes the rest
    std::vector<void*> blocks;
    for (int i = 0; i < 12; ++i) blocks.push_back(buffers::acquire(bytes));
    for (void* p : blocks) buffers::release(p, bytes);
    const auto s = buffers::stats();
    CHECK(s.cached_bytes == 4 * bytes);  // the thread's share, capped by the limit
    CHECK(s.shared_bytes <= 4 * bytes);
    CHECK(s.shared_bytes >= bytes);  // the pool kept some of the rest
    buffers::trim();
}

TEST_CASE("memory: tensors allocate through the cache, and repeated steps reuse their buffers") {
    LimitGuard guard;
    set_buffer_cache_limit(std::size_t{64} << 20);
    buffers::trim();
    auto step = [] {
        Variable w(Tensor::full({64, 64}, 0.5, float32), true);
        Variable x(Tensor::full({16, 64}, 1.0, float32), false);
        Variable loss = sum(tanh(matmul(x, w)));
        loss.backward();
        return w.grad().to_vector();
    };
    const std::vector<double> first = step();
    const auto warm = buffers::stats();
    const std::vector<double> second = step();
    const auto after = buffers::stats();
    CHECK(first == second);  // reused buffers give the same numbers
    CHECK(after.hits > warm.hits);
    CHECK(after.misses == warm.misses);  // the second step's buffers all came from the cache
    // A tensor's elements are cache-line aligned, and any xtensor expression still builds one.
    Tensor t(xt::xarray<double>{{1.0, 2.0}, {3.0, 4.0}});
    CHECK(aligned(t.xt<double>().data()));
    CHECK(t.flat(3) == 4.0);
    buffers::trim();
}

TEST_CASE("memory: a variable and a recorded op's input list come from the cache as well") {
    LimitGuard guard;
    set_buffer_cache_limit(std::size_t{64} << 20);
    auto taken = [](const auto& make) {
        const auto before = buffers::stats();
        auto made = make();
        const auto after = buffers::stats();
        return (after.hits + after.misses) - (before.hits + before.misses);
    };
    Tensor t = Tensor::full({3}, 2.0, float32);
    CHECK(taken([&] { return Variable(t); }) ==
          1);  // the variable's block, its control block inside
    Variable x(Tensor::full({3}, 1.0, float32), true);
    std::uint64_t plain = 0;
    {
        NoGradGuard off;
        plain = taken([&] { return x * x; });
    }
    CHECK(taken([&] { return x * x; }) == plain + 1);  // recorded: its list of inputs besides
}

TEST_CASE("memory: the cache's limit at start-up is TAPEGRAD_BUFFER_CACHE_MIB, 256 MiB unset") {
#if defined(__SANITIZE_ADDRESS__)
    const std::size_t fallback = 0;
#else
    const std::size_t fallback = std::size_t{256} << 20;
#endif
    if (!std::getenv("TAPEGRAD_BUFFER_CACHE_MIB")) CHECK(switches().buffer_cache_bytes == fallback);
    CHECK(buffer_cache_limit() == switches().buffer_cache_bytes);  // tests restore the limit
    CHECK(large_cache_limit() == switches().large_cache_bytes);
    if (!std::getenv("TAPEGRAD_LARGE_CACHE_MIB")) {
#if defined(__SANITIZE_ADDRESS__)
        CHECK(switches().large_cache_bytes == 0);
#else
        const auto memory = static_cast<std::size_t>(sysconf(_SC_PHYS_PAGES)) *
                            static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
        CHECK(switches().large_cache_bytes == memory / 4);
#endif
    }
}

TEST_CASE("memory: tune_malloc() sets glibc's thresholds unless TAPEGRAD_MALLOC_TUNING=0") {
    const MallocTuning t = tune_malloc();
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
    if (switches().malloc_tuning) {
        CHECK(t.applied);
        CHECK(t.mmap_threshold == std::size_t{32} << 20);
        CHECK(t.trim_threshold == std::size_t{256} << 20);
        CHECK(t.top_pad == std::size_t{16} << 20);
        return;
    }
#endif
    CHECK_FALSE(t.applied);
}
