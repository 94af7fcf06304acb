// What the CPU runs, and the on/off state of the AVX-512 code paths (kernels/packed_gemm,
// kernels/vector_math).
#pragma once

#include <atomic>

namespace tapegrad::detail {

inline bool cpu_has_avx512f() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

// On when `allowed` (the path's switch in switches()), the CPU runs AVX-512F and set(false) is
// not in force.
class Avx512Switch {
public:
    explicit Avx512Switch(bool allowed) : supported_(allowed && cpu_has_avx512f()) {}
    bool on() const { return supported_ && enabled_.load(std::memory_order_relaxed); }
    void set(bool on) { enabled_.store(on, std::memory_order_relaxed); }

private:
    const bool supported_;
    std::atomic<bool> enabled_{true};
};

}  // namespace tapegrad::detail
