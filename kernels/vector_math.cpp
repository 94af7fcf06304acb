#include "kernels/vector_math.hpp"

#include <stdexcept>

#include "core/config.hpp"
#include "kernels/cpu.hpp"
#include "kernels/vector_math_kernels.hpp"

namespace tapegrad {

namespace vector_math {

namespace {

tapegrad::detail::IsaSwitch& state() {
    static tapegrad::detail::IsaSwitch s(switches().vector_math);
    return s;
}

// The routines for isa(), which available() has checked is not generic. isa() again at each
// call rather than a table chosen once: set_isa_cap() applies at once, and the branch costs
// nothing next to an array.
const detail::Functions& current() {
#if defined(__x86_64__)
    return isa() == Isa::avx512 ? detail::functions_avx512() : detail::functions_avx2();
#elif defined(__aarch64__)
    return detail::functions_neon();
#else
    throw std::logic_error("vector_math: no kernels for this architecture");
#endif
}

}  // namespace

bool available() { return state().on(); }

void set_enabled(bool on) { state().set(on); }

void exp(const float* x, float* y, std::size_t n) { current().exp(x, y, n); }
void sigmoid(const float* x, float* y, std::size_t n) { current().sigmoid(x, y, n); }
void tanh(const float* x, float* y, std::size_t n) { current().tanh(x, y, n); }

}  // namespace vector_math

}  // namespace tapegrad
