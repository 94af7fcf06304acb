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
    const Isa cap = isa_cap().load(std::memory_order_relaxed);
    return cap < cpu_isa() ? cap : cpu_isa();
}

void set_isa_cap(Isa cap) { isa_cap().store(cap, std::memory_order_relaxed); }

}  // namespace tapegrad
