#include "kernels/isa.hpp"

#include <atomic>

#include "kernels/cpu.hpp"

namespace tapegrad {

namespace {

std::atomic<Isa>& isa_cap() {
    static std::atomic<Isa> cap{switches().isa_cap};
    return cap;
}

}  // namespace

Isa cpu_isa() {
    static const Isa isa = detail::cpu_isa_uncapped();
    return isa;
}

Isa isa() {
    const Isa cap = isa_cap().load(std::memory_order_relaxed), cpu = cpu_isa();
    if (cap == Isa::generic || cpu == Isa::generic) return Isa::generic;
    if (cpu == Isa::neon) return Isa::neon;
    return cap == Isa::neon ? Isa::generic : cap < cpu ? cap : cpu;
}

void set_isa_cap(Isa cap) { isa_cap().store(cap, std::memory_order_relaxed); }

}  // namespace tapegrad
