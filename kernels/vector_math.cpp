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

#if !defined(__x86_64__) && !defined(__aarch64__)
[[noreturn]] void unavailable() {
    throw std::logic_error("vector_math: no kernels for this architecture");
}
#endif

}  // namespace

bool available() { return state().on(); }

void set_enabled(bool on) { state().set(on); }

#if defined(__x86_64__)
// isa() again at each call rather than a pointer chosen once: set_isa_cap() applies at once, and
// the branch costs nothing next to an array.
void exp(const float* x, float* y, std::size_t n) {
    if (isa() == Isa::avx512) detail::exp_avx512(x, y, n);
    else detail::exp_avx2(x, y, n);
}
void sigmoid(const float* x, float* y, std::size_t n) {
    if (isa() == Isa::avx512) detail::sigmoid_avx512(x, y, n);
    else detail::sigmoid_avx2(x, y, n);
}
void tanh(const float* x, float* y, std::size_t n) {
    if (isa() == Isa::avx512) detail::tanh_avx512(x, y, n);
    else detail::tanh_avx2(x, y, n);
}
#elif defined(__aarch64__)
void exp(const float* x, float* y, std::size_t n) { detail::exp_neon(x, y, n); }
void sigmoid(const float* x, float* y, std::size_t n) { detail::sigmoid_neon(x, y, n); }
void tanh(const float* x, float* y, std::size_t n) { detail::tanh_neon(x, y, n); }
#else
// Elsewhere (isa() generic, available() false) nothing calls these.
void exp(const float*, float*, std::size_t) { unavailable(); }
void sigmoid(const float*, float*, std::size_t) { unavailable(); }
void tanh(const float*, float*, std::size_t) { unavailable(); }
#endif

}  // namespace vector_math

}  // namespace tapegrad
