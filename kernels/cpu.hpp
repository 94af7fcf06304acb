// What the CPU runs, and the on/off state of the code paths written for an instruction set
// (kernels/packed_gemm, kernels/vector_math).
#pragma once

#include <atomic>

#include "kernels/isa.hpp"

namespace tapegrad::detail {

// The best instruction set this CPU runs, whatever the cap (isa() applies it).
inline Isa cpu_isa_uncapped() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return Isa::avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
#elif defined(__aarch64__)
    return Isa::neon;  // Advanced SIMD is part of every AArch64 CPU
#endif
    return Isa::generic;
}

// On when `allowed` (the path's switch in switches()), isa() is not generic and set(false) is
// not in force. isa() is read at each call: set_isa_cap() takes effect at once.
class IsaSwitch {
public:
    explicit IsaSwitch(bool allowed) : allowed_(allowed) {}
    bool on() const {
        return allowed_ && enabled_.load(std::memory_order_relaxed) && isa() != Isa::generic;
    }
    void set(bool on) { enabled_.store(on, std::memory_order_relaxed); }

private:
    const bool allowed_;
    std::atomic<bool> enabled_{true};
};

}  // namespace tapegrad::detail
