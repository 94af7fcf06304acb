// exp, sigmoid and tanh written once on xsimd batches, for kernels/vector_math_avx512.cpp,
// kernels/vector_math_avx2.cpp and kernels/vector_math_neon.cpp to compile each for its
// instruction set; kernels/vector_math.cpp picks one at run time. Include it from those files
// only.
//
// Those files are compiled with flags the CPU may not have (-mavx512f), so every inline or
// template function they instantiate must be their own: a weak symbol such as std::min<float>
// emitted there may be the copy the linker keeps for the whole program, and then crash an AVX2
// CPU. Hence: only xsimd, <cstddef>, <cstdint> and <type_traits> included, everything below in
// an anonymous namespace, no std algorithms; xsimd's functions are templates on the arch, so
// their symbols are distinct anyway. After a change, `nm -C` on those objects must show no weak
// symbol (' W ') that is not xsimd's for their arch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <xsimd/xsimd.hpp>

namespace tapegrad::vector_math::detail {

// One instruction set's routines, each with the contract of vector_math::exp etc.; one table per
// arch file.
using Function = void (*)(const float* x, float* y, std::size_t n);
struct Functions {
    Function exp, sigmoid, tanh;
};

const Functions& functions_avx512();
const Functions& functions_avx2();
const Functions& functions_neon();

}  // namespace tapegrad::vector_math::detail

namespace {
namespace vector_math_kernels {

// p 2^n for integral n in [-150, 128], rounded once, as the exact product would be: inf above
// the float range and down through the subnormals to 0 below it.
template <class Arch>
inline xsimd::batch<float, Arch> scale(xsimd::batch<float, Arch> p, xsimd::batch<float, Arch> n) {
    if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) {
        return _mm512_scalef_ps(p, n);
    } else {
        // no scalef: 2^n from exponent bits, in two halves so that each power is a normal float
        // and the first product exact (p is in [0.7, 1.5)); only the second rounds
        using ints = xsimd::batch<std::int32_t, Arch>;
        const ints k = xsimd::to_int(n), k1 = k >> 1, k2 = k - k1;
        const auto pow2 = [](ints e) {
            return xsimd::bitwise_cast<xsimd::batch<float, Arch>>((e + ints(127)) << 23);
        };
        return p * pow2(k1) * pow2(k2);
    }
}

// a / b, correctly rounded. xsimd 8.1 divides float32 on NEON by a reciprocal estimate and two
// Newton steps, up to 4 ulps off in sigmoid (tests/test_vector_math.cpp); AArch64 has a true
// division.
template <class Arch>
inline xsimd::batch<float, Arch> divide(xsimd::batch<float, Arch> a, xsimd::batch<float, Arch> b) {
    if constexpr (std::is_base_of_v<xsimd::neon64, Arch>) {
        return vdivq_f32(a, b);
    } else {
        return a / b;
    }
}

// e^x: x = n ln2 + r with |r| <= ln2/2 (ln2 split in two for an exact n ln2), e^r from a
// degree-6 polynomial (Cephes' expf coefficients), then scale().
template <class Arch>
inline xsimd::batch<float, Arch> exp(xsimd::batch<float, Arch> x) {
    using floats = xsimd::batch<float, Arch>;
    // beyond these e^x is inf or 0 in float32; min/max keep a NaN x (x is the second operand)
    x = xsimd::min(floats(89.0f), x);
    x = xsimd::max(floats(-104.0f), x);
    const floats n = xsimd::nearbyint(x * floats(1.44269504088896341f));
    // r = x - n ln2 as fma with -ln2's halves: xsimd's fnma costs a negation more
    floats r = xsimd::fma(n, floats(-0.693359375f), x);
    r = xsimd::fma(n, floats(2.12194440e-4f), r);
    floats p(1.9875691500e-4f);
    p = xsimd::fma(p, r, floats(1.3981999507e-3f));
    p = xsimd::fma(p, r, floats(8.3334519073e-3f));
    p = xsimd::fma(p, r, floats(4.1665795894e-2f));
    p = xsimd::fma(p, r, floats(1.6666665459e-1f));
    p = xsimd::fma(p, r, floats(5.0000001201e-1f));
    p = xsimd::fma(p, r * r, r + floats(1.0f));
    return vector_math_kernels::scale(p, n);
}

// sigmoid: 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) below, so that e^-|x| never overflows and
// sigmoid(x) follows e^x down through the subnormals (1 / (1 + e^-x) is 0 once e^-x is inf).
template <class Arch>
inline xsimd::batch<float, Arch> sigmoid(xsimd::batch<float, Arch> x) {
    using floats = xsimd::batch<float, Arch>;
    const floats e = vector_math_kernels::exp(floats(0.0f) - xsimd::abs(x));
    return vector_math_kernels::divide(xsimd::select(x < floats(0.0f), e, floats(1.0f)),
                                       floats(1.0f) + e);
}

// tanh: x + x z P(z), z = x², for |x| < 0.625 (Cephes' tanhf coefficients), where the form
// below would lose x's low bits to cancellation; otherwise 1 - 2 / (e^{2|x|} + 1) with x's sign
// (e^{2|x|} = inf gives exactly 1).
template <class Arch>
inline xsimd::batch<float, Arch> tanh(xsimd::batch<float, Arch> x) {
    using floats = xsimd::batch<float, Arch>;
    const floats z = x * x;
    floats p(-5.70498872745e-3f);
    p = xsimd::fma(p, z, floats(2.06390887954e-2f));
    p = xsimd::fma(p, z, floats(-5.37397155531e-2f));
    p = xsimd::fma(p, z, floats(1.33314422036e-1f));
    p = xsimd::fma(p, z, floats(-3.33332819422e-1f));
    const floats ax = xsimd::abs(x);
    const floats small = xsimd::fma(x * z, p, x);  // x's sign, as 1 + z P(z) > 0; but +0 for -0
    const floats e = vector_math_kernels::exp(floats(2.0f) * ax);
    const floats large =
        floats(1.0f) - vector_math_kernels::divide(floats(2.0f), e + floats(1.0f));  // of |x|
    // tanh has x's sign: setting it keeps -0 for -0. |x| < 0.625 is false for NaN, whose
    // `large` is NaN too.
    return xsimd::select(ax < floats(0.625f), small, large) | (x & floats(-0.0f));
}

// y[i] = F(x[i]); the last n % lanes through an aligned buffer, so that no load or store goes
// past the arrays.
template <class Arch, xsimd::batch<float, Arch> (*F)(xsimd::batch<float, Arch>)>
inline void apply(const float* x, float* y, std::size_t n) {
    using floats = xsimd::batch<float, Arch>;
    constexpr std::size_t lanes = floats::size;
    std::size_t i = 0;
    for (; i + lanes <= n; i += lanes) F(floats::load_unaligned(x + i)).store_unaligned(y + i);
    if (i < n) {
        alignas(Arch::alignment()) float buffer[lanes] = {};
        for (std::size_t j = 0; i + j < n; ++j) buffer[j] = x[i + j];
        F(floats::load_aligned(buffer)).store_aligned(buffer);
        for (std::size_t j = 0; i + j < n; ++j) y[i + j] = buffer[j];
    }
}

// The table for Arch.
template <class Arch>
constexpr tapegrad::vector_math::detail::Functions make_functions() {
    namespace k = vector_math_kernels;
    return {&k::apply<Arch, k::exp<Arch>>, &k::apply<Arch, k::sigmoid<Arch>>,
            &k::apply<Arch, k::tanh<Arch>>};
}

}  // namespace vector_math_kernels
}  // namespace
