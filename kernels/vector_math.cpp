#include "kernels/vector_math.hpp"

#include <immintrin.h>

#include "core/config.hpp"
#include "kernels/cpu.hpp"

namespace tapegrad::vector_math {

namespace {

#define TAPEGRAD_AVX512 __attribute__((target("avx512f")))

// e^x: x = n ln2 + r with |r| <= ln2/2 (ln2 split in two for an exact n ln2), e^r from a
// degree-6 polynomial (Cephes' expf coefficients), and 2^n applied by scalef, which saturates
// to inf and underflows through the subnormals to 0 as the exact result does.
TAPEGRAD_AVX512 inline __m512 exp16(__m512 x) {
    // beyond these e^x is inf or 0 in float32; min/max keep a NaN x (x is the second operand)
    x = _mm512_min_ps(_mm512_set1_ps(89.0f), x);
    x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

TAPEGRAD_AVX512 inline __m512 sigmoid16(__m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

// tanh: x + x z P(z), z = x², for |x| < 0.625 (Cephes' tanhf coefficients), where the form
// below would lose x's low bits to cancellation; otherwise 1 - 2 / (e^{2|x|} + 1) with x's sign
// (e^{2|x|} = inf gives exactly 1).
TAPEGRAD_AVX512 inline __m512 tanh16(__m512 x) {
    const __m512 z = _mm512_mul_ps(x, x);
    __m512 p = _mm512_set1_ps(-5.70498872745e-3f);
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(2.06390887954e-2f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-5.37397155531e-2f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(1.33314422036e-1f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-3.33332819422e-1f));
    const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(0x80000000u)));
    // tanh has x's sign; setting it explicitly keeps -0 for -0, which x + (-0) would lose
    const __m512 small = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(
        _mm512_castps_si512(_mm512_fmadd_ps(_mm512_mul_ps(x, z), p, x)), _mm512_castps_si512(x),
        _mm512_castps_si512(sign), 0xd8));  // sign ? x : value, bitwise
    const __m512 ax =
        _mm512_castsi512_ps(_mm512_andnot_si512(_mm512_castps_si512(sign), _mm512_castps_si512(x)));
    const __m512 one = _mm512_set1_ps(1.0f), two = _mm512_set1_ps(2.0f);
    const __m512 e = exp16(_mm512_mul_ps(two, ax));
    const __m512 large_abs = _mm512_sub_ps(one, _mm512_div_ps(two, _mm512_add_ps(e, one)));
    const __m512 large = _mm512_castsi512_ps(
        _mm512_or_si512(_mm512_castps_si512(large_abs),
                        _mm512_and_si512(_mm512_castps_si512(sign), _mm512_castps_si512(x))));
    // |x| < 0.625 (false for NaN, whose `large` is NaN too)
    const __mmask16 use_small = _mm512_cmp_ps_mask(ax, _mm512_set1_ps(0.625f), _CMP_LT_OQ);
    return _mm512_mask_blend_ps(use_small, large, small);
}

template <__m512 (*F)(__m512)>
TAPEGRAD_AVX512 void apply(const float* x, float* y, std::size_t n) {
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, F(_mm512_loadu_ps(x + i)));
    if (i < n) {
        const __mmask16 rest = static_cast<__mmask16>((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(y + i, rest, F(_mm512_maskz_loadu_ps(rest, x + i)));
    }
}

detail::Avx512Switch& state() {
    static detail::Avx512Switch s(switches().vector_math);
    return s;
}

}  // namespace

bool available() { return state().on(); }

void set_enabled(bool on) { state().set(on); }

void exp(const float* x, float* y, std::size_t n) { apply<exp16>(x, y, n); }
void sigmoid(const float* x, float* y, std::size_t n) { apply<sigmoid16>(x, y, n); }
void tanh(const float* x, float* y, std::size_t n) { apply<tanh16>(x, y, n); }

}  // namespace tapegrad::vector_math
