// The on/off state of an optional AVX-512 code path (core/packed_gemm, core/vector_math): on
// when the CPU runs AVX-512F, the environment variable named at construction is not "0" (read
// once) and set(false) is not in force.
#pragma once

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace tapegrad::detail {

class Avx512Switch {
public:
    explicit Avx512Switch(const char* env) : supported_(supported(env)) {}
    bool on() const { return supported_ && enabled_.load(std::memory_order_relaxed); }
    void set(bool on) { enabled_.store(on, std::memory_order_relaxed); }

private:
    static bool supported(const char* env) {
        if (const char* v = std::getenv(env); v && std::strcmp(v, "0") == 0) return false;
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f");
    }
    const bool supported_;
    std::atomic<bool> enabled_{true};
};

}  // namespace tapegrad::detail
