// bench/simd_library: Google Highway against xsimd, tapegrad's SIMD library (issue #28), on the
// two kinds of kernel tapegrad has: exp / sigmoid / tanh over a float32 array
// (kernels/vector_math.hpp) and the packed-panel matrix product (kernels/packed_gemm.hpp).
//
// The Highway side is written here, once, and compiled for AVX2 and AVX-512 in this one file
// with foreach_target.h: the file re-includes itself once per target of HWY_TARGETS (AVX3 and,
// with tapegrad's -march=x86-64-v3 baseline, the static target AVX2), each into its own
// namespace, simd_bench::N_AVX2 and simd_bench::N_AVX3, which main() calls by name (no dynamic
// dispatch: both run on an AVX-512 CPU). The xsimd side is tapegrad's own kernels under
// set_isa_cap(avx2) and set_isa_cap(avx512).
//
// Pinned to one CPU (--cpu); every measurement is taken in --rounds rounds, the four variants
// in turn within each, and the median of all repetitions is reported with the range of the
// rounds' medians (the machine's noise). Markdown on stdout and into a section of --out.

// Everything Highway's per-target passes must not re-read: included and declared once.
#ifndef TAPEGRAD_BENCH_SIMD_LIBRARY_ONCE
#define TAPEGRAD_BENCH_SIMD_LIBRARY_ONCE

// Highway 1.0.3 counts AES and PCLMUL as part of its SSE4/AVX2 baseline, which x86-64-v3 lacks:
// without this its static target would be SSSE3, and SSSE3 and SSE4 copies would be compiled
// too. Nothing here uses AES, so AVX2 becomes the static target and AVX3 the one other.
#define HWY_DISABLE_PCLMUL_AES

#include <sched.h>
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <tapegrad/kernels/isa.hpp>
#include <tapegrad/kernels/packed_gemm.hpp>
#include <tapegrad/kernels/vector_math.hpp>
#include <xsimd/config/xsimd_config.hpp>
#include "common.hpp"

namespace simd_bench {

// B [k, n] packed for the Highway kernel: panels of `vectors` vectors of `lanes` floats, each
// panel's k rows one after the other (zero-padded to whole vectors), 64-byte aligned. The same
// layout as tapegrad's PackedMatrix.
struct Panel {
    std::size_t col0, cols, vectors;
};
struct Free {
    void operator()(float* p) const { std::free(p); }
};
struct Packed {
    std::size_t k = 0, n = 0;
    std::vector<Panel> panels;
    std::unique_ptr<float[], Free> data;
    const float* panel(const Panel& p) const { return data.get() + p.col0 * k; }
};

// tapegrad's panel rule (kernels/packed_gemm.cpp): full panels of lanes * vectors columns, but
// when lanes * vectors + 1 to + lanes columns are left the next panel takes 2 vectors of them.
inline Packed pack(const float* b, std::size_t k, std::size_t n, std::size_t lanes,
                   std::size_t vectors) {
    Packed out;
    out.k = k;
    out.n = n;
    const std::size_t nr = lanes * vectors;
    for (std::size_t col = 0; col < n;) {
        const std::size_t left = n - col;
        const std::size_t cols = left > nr && left <= nr + lanes ? 2 * lanes : std::min(nr, left);
        out.panels.push_back({col, cols, (cols + lanes - 1) / lanes});
        col += cols;
    }
    const Panel& last = out.panels.back();
    const std::size_t count = (last.col0 + last.vectors * lanes) * k;
    out.data.reset(static_cast<float*>(std::aligned_alloc(64, (count * 4 + 63) / 64 * 64)));
    if (!out.data) throw std::bad_alloc();
    for (const Panel& p : out.panels) {
        const std::size_t width = p.vectors * lanes;
        float* to = out.data.get() + p.col0 * k;
        for (std::size_t i = 0; i < k; ++i)
            for (std::size_t j = 0; j < width; ++j)
                to[i * width + j] = j < p.cols ? b[i * n + p.col0 + j] : 0.0f;
    }
    return out;
}

}  // namespace simd_bench

#endif  // TAPEGRAD_BENCH_SIMD_LIBRARY_ONCE

// Highway re-includes this file once per target (path relative to the include directories).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "tapegrad/bench/simd_library.cpp"
#include <hwy/foreach_target.h>  // must precede highway.h

#include <hwy/highway.h>

#include <hwy/contrib/math/math-inl.h>  // per target too: after highway.h

HWY_BEFORE_NAMESPACE();
namespace simd_bench {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;
constexpr std::size_t kLanes = HWY_LANES(float);
// tapegrad's blocking: AVX-512 3 vectors x 8 rows (24 of 32 zmm), AVX2 2 x 6 (12 of 16 ymm)
constexpr std::size_t kVectors = kLanes == 16 ? 3 : 2;
constexpr std::size_t kRows = kLanes == 16 ? 8 : 6;

struct ExpOp {
    HWY_INLINE V operator()(D d, V x) const { return hn::Exp(d, x); }
};
// Highway 1.0.3 has no sigmoid: e = e^-|x|, then (x < 0 ? e : 1) / (1 + e), as tapegrad computes
// it
struct SigmoidOp {
    HWY_INLINE V operator()(D d, V x) const {
        const V one = hn::Set(d, 1.0f);
        const V e = hn::Exp(d, hn::Neg(hn::Abs(x)));
        return hn::Div(hn::IfThenElse(hn::Lt(x, hn::Zero(d)), e, one), hn::Add(one, e));
    }
};
struct TanhOp {
    HWY_INLINE V operator()(D d, V x) const { return hn::Tanh(d, x); }
};

// y[i] = F(x[i]); the last n % lanes through a zero-padded buffer, as tapegrad's apply()
template <class F>
HWY_INLINE void Apply(const float* HWY_RESTRICT x, float* HWY_RESTRICT y, std::size_t n) {
    const D d;
    const F f;
    std::size_t i = 0;
    for (; i + kLanes <= n; i += kLanes) hn::StoreU(f(d, hn::LoadU(d, x + i)), d, y + i);
    if (i < n) {
        HWY_ALIGN float buffer[kLanes] = {};
        for (std::size_t j = 0; i + j < n; ++j) buffer[j] = x[i + j];
        hn::Store(f(d, hn::Load(d, buffer)), d, buffer);
        for (std::size_t j = 0; i + j < n; ++j) y[i + j] = buffer[j];
    }
}

HWY_NOINLINE void ExpArray(const float* x, float* y, std::size_t n) { Apply<ExpOp>(x, y, n); }
HWY_NOINLINE void SigmoidArray(const float* x, float* y, std::size_t n) {
    Apply<SigmoidOp>(x, y, n);
}
HWY_NOINLINE void TanhArray(const float* x, float* y, std::size_t n) { Apply<TanhOp>(x, y, n); }

// c[r, 0:cols] = Σ_{kk < depth} a[r, kk] panel[kk, :] for r < MR: MR * NV accumulators in
// registers, one broadcast of a per row per depth step, NV FMAs against the panel's row.
template <std::size_t MR, std::size_t NV>
HWY_NOINLINE void Kernel(std::size_t depth, const float* HWY_RESTRICT a, std::size_t lda,
                         const float* HWY_RESTRICT panel, float* HWY_RESTRICT c, std::size_t ldc,
                         std::size_t cols) {
    const D d;
    V acc[MR][NV];
    for (std::size_t r = 0; r < MR; ++r)
        for (std::size_t v = 0; v < NV; ++v) acc[r][v] = hn::Zero(d);
    for (std::size_t kk = 0; kk < depth; ++kk) {
        V b[NV];
        for (std::size_t v = 0; v < NV; ++v) b[v] = hn::Load(d, panel + (kk * NV + v) * kLanes);
        for (std::size_t r = 0; r < MR; ++r) {
            const V x = hn::Set(d, a[r * lda + kk]);
            for (std::size_t v = 0; v < NV; ++v) acc[r][v] = hn::MulAdd(x, b[v], acc[r][v]);
        }
    }
    for (std::size_t v = 0; v < NV; ++v) {
        const std::size_t at = v * kLanes, valid = cols - at < kLanes ? cols - at : kLanes;
        for (std::size_t r = 0; r < MR; ++r) {
            if (valid == kLanes) {
                hn::StoreU(acc[r][v], d, c + r * ldc + at);
            } else {  // a narrow last panel: only its columns
                HWY_ALIGN float buffer[kLanes];
                hn::Store(acc[r][v], d, buffer);
                for (std::size_t j = 0; j < valid; ++j) c[r * ldc + at + j] = buffer[j];
            }
        }
    }
}

template <std::size_t MR>
HWY_INLINE void Block(std::size_t nv, std::size_t depth, const float* a, std::size_t lda,
                      const float* panel, float* c, std::size_t ldc, std::size_t cols) {
    if (nv == 1) Kernel<MR, 1>(depth, a, lda, panel, c, ldc, cols);
    else if (nv == 2) Kernel<MR, 2>(depth, a, lda, panel, c, ldc, cols);
    else Kernel<MR, kVectors>(depth, a, lda, panel, c, ldc, cols);
}

HWY_INLINE void Block(std::size_t rows, std::size_t nv, std::size_t depth, const float* a,
                      std::size_t lda, const float* panel, float* c, std::size_t ldc,
                      std::size_t cols) {
    switch (rows) {
        case 1: return Block<1>(nv, depth, a, lda, panel, c, ldc, cols);
        case 2: return Block<2>(nv, depth, a, lda, panel, c, ldc, cols);
        case 3: return Block<3>(nv, depth, a, lda, panel, c, ldc, cols);
        case 4: return Block<4>(nv, depth, a, lda, panel, c, ldc, cols);
        case 5: return Block<5>(nv, depth, a, lda, panel, c, ldc, cols);
        case 6: return Block<6>(nv, depth, a, lda, panel, c, ldc, cols);
        case 7: return Block < 7 <= kRows ? 7 : kRows > (nv, depth, a, lda, panel, c, ldc, cols);
        default: return Block<kRows>(nv, depth, a, lda, panel, c, ldc, cols);
    }
}

Packed Pack(const float* b, std::size_t k, std::size_t n) {
    return pack(b, k, n, kLanes, kVectors);
}

// c[m, n] = a[m, k] B: row blocks outermost, then the panels left to right, the whole depth in
// one pass (tapegrad's order for k <= one_pass_depth, which both shapes here are)
HWY_NOINLINE void Multiply(const Packed& b, std::size_t m, const float* a, std::size_t lda,
                           float* c) {
    for (std::size_t i = 0; i < m; i += kRows) {
        const std::size_t rows = m - i < kRows ? m - i : kRows;
        for (const Panel& p : b.panels)
            Block(rows, p.vectors, b.k, a + i * lda, lda, b.panel(p), c + i * b.n + p.col0, b.n,
                  p.cols);
    }
}

}  // namespace HWY_NAMESPACE
}  // namespace simd_bench
HWY_AFTER_NAMESPACE();

#if HWY_ONCE

#if !(HWY_TARGETS & HWY_AVX2) || !(HWY_TARGETS & HWY_AVX3)
#error "bench/simd_library needs Highway's AVX2 and AVX3 targets (x86-64)"
#endif

#ifdef TAPEGRAD_BENCH_SLEEF
#include <sleef.h>
// sleef.h declares its AVX-512 functions only where __AVX512F__ is defined, and this file's
// baseline is AVX2: the two used here are declared again, and called from functions marked for
// AVX-512.
#pragma GCC push_options
#pragma GCC target("avx512f")
extern "C" {
__m512 Sleef_expf16_u10avx512f(__m512);
__m512 Sleef_tanhf16_u35avx512f(__m512);
}
#pragma GCC pop_options
#define SIMD_BENCH_AVX512 __attribute__((target("avx512f")))
#endif

namespace tb = tapegrad::bench;
using tapegrad::Isa;

namespace simd_bench {
namespace {

bool run_on_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0;
}

using ArrayFn = void (*)(const float*, float*, std::size_t);

// One side of a comparison: a function to time and the ISA cap it runs under.
struct Variant {
    std::string name;
    Isa cap;
    std::function<void()> run;
};

struct Result {
    double median = 0, low = 0, high = 0;  // per call, ns; low/high: the rounds' medians
};

// Times each variant `reps` times in each of `rounds` rounds, the variants in turn; `inner`
// calls per timed repetition.
std::vector<Result> measure(const std::vector<Variant>& variants, int rounds, int reps, int inner) {
    std::vector<std::vector<double>> all(variants.size());
    std::vector<std::vector<double>> round_medians(variants.size());
    for (int round = 0; round < rounds; ++round) {
        for (std::size_t v = 0; v < variants.size(); ++v) {
            tapegrad::set_isa_cap(variants[v].cap);
            const auto samples = tb::time_reps(
                2, reps,
                [&] {
                    for (int i = 0; i < inner; ++i) variants[v].run();
                },
                0.02);  // (warm-up: the first round ran slow without it)
            std::vector<double> ns;
            for (const auto& s : samples) ns.push_back(s.time() * 1e9 / inner);
            round_medians[v].push_back(tb::summarize(ns).median);
            all[v].insert(all[v].end(), ns.begin(), ns.end());
        }
    }
    tapegrad::set_isa_cap(Isa::avx512);
    std::vector<Result> out;
    for (std::size_t v = 0; v < variants.size(); ++v) {
        const auto [lo, hi] = std::minmax_element(round_medians[v].begin(), round_medians[v].end());
        out.push_back({tb::summarize(all[v]).median, *lo, *hi});
    }
    return out;
}

// |y - ref| in units of the float spacing at ref (2^-149 among the subnormals); 0 when both
// are the same infinity or NaN.
double ulp_error(float y, double ref) {
    if (std::isnan(ref) || std::isnan(y)) return std::isnan(ref) && std::isnan(y) ? 0 : INFINITY;
    // ref rounds to inf from FLT_MAX + half its spacing on
    const double overflow = static_cast<double>(FLT_MAX) + std::ldexp(1.0, 103);
    if (std::isinf(y)) return std::fabs(ref) >= overflow && (y > 0) == (ref > 0) ? 0 : INFINITY;
    const double a = std::fabs(ref);
    const int e = a < static_cast<double>(FLT_MIN) ? -126 : std::min(std::ilogb(a), 127);
    return std::fabs(static_cast<double>(y) - ref) / std::ldexp(1.0, e - 23);
}

struct Accuracy {
    double max_ulp = 0;
    float worst_x = 0;
    std::size_t flushed = 0;  // results 0 where the correctly rounded float is not
};

Accuracy accuracy(ArrayFn f, const std::vector<float>& x, double (*ref)(double)) {
    std::vector<float> y(x.size());
    f(x.data(), y.data(), x.size());
    Accuracy out;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double r = ref(x[i]);
        const double e = ulp_error(y[i], r);
        if (e > out.max_ulp) {
            out.max_ulp = e;
            out.worst_x = x[i];
        }
        if (y[i] == 0.0f && static_cast<float>(r) != 0.0f) ++out.flushed;
    }
    return out;
}

double ref_exp(double x) { return std::exp(x); }
double ref_sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double ref_tanh(double x) { return std::tanh(x); }

std::string ulp_cell(const Accuracy& a) {
    if (std::isinf(a.max_ulp)) return fmt::format("inf (x = {:.6g})", a.worst_x);
    return fmt::format("{:.2f} (x = {:.6g})", a.max_ulp, a.worst_x);
}

std::string range_cell(const Result& r, double scale, int digits) {
    return fmt::format("{:.{}f} ({:.{}f}–{:.{}f})", r.median * scale, digits, r.low * scale, digits,
                       r.high * scale, digits);
}

std::string special_cell(float v) { return std::isnan(v) ? "nan" : fmt::format("{}", v); }

// the inputs of the special-values tables: NaN, -inf, inf, -200, 200, -0
const std::vector<float> special_inputs{
    std::numeric_limits<float>::quiet_NaN(), -INFINITY, INFINITY, -200.0f, 200.0f, -0.0f};

std::vector<float> evenly(float lo, float hi, std::size_t n) {
    std::vector<float> x(n);
    for (std::size_t i = 0; i < n; ++i)
        x[i] = lo + (hi - lo) * static_cast<float>(i) / static_cast<float>(n - 1);
    return x;
}

#ifdef TAPEGRAD_BENCH_SLEEF
// ---- SLEEF 3.5, for the vector math only: its expf within 1 ulp (u10; there is no faster
// one) and tanhf within 3.5 (u35, the faster of its two, as tapegrad's is within 3); sigmoid from
// its exp in tapegrad's form, e = e^-|x| and then (x < 0 ? e : 1) / (1 + e)

// (sleef.h's own declarations carry attributes that keep them from being template arguments)
__m256 sleef_exp8(__m256 x) { return Sleef_expf8_u10avx2(x); }
__m256 sleef_tanh8(__m256 x) { return Sleef_tanhf8_u35avx2(x); }

__m256 sleef_sigmoid8(__m256 x) {
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    const __m256 e =
        Sleef_expf8_u10avx2(_mm256_sub_ps(zero, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x)));
    const __m256 above = _mm256_blendv_ps(one, e, _mm256_cmp_ps(x, zero, _CMP_LT_OQ));
    return _mm256_div_ps(above, _mm256_add_ps(one, e));
}

SIMD_BENCH_AVX512 __m512 sleef_sigmoid16(__m512 x) {
    const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
    const __m512 e = Sleef_expf16_u10avx512f(_mm512_sub_ps(zero, _mm512_abs_ps(x)));
    const __mmask16 negative = _mm512_cmp_ps_mask(x, zero, _CMP_LT_OQ);
    return _mm512_div_ps(_mm512_mask_blend_ps(negative, one, e), _mm512_add_ps(one, e));
}

// y[i] = F(x[i]); the last n % lanes through a zero-padded buffer, as tapegrad's apply()
template <__m256 (*F)(__m256)>
void sleef_apply8(const float* x, float* y, std::size_t n) {
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, F(_mm256_loadu_ps(x + i)));
    if (i == n) return;
    alignas(32) float buffer[8] = {};
    std::copy(x + i, x + n, buffer);
    _mm256_store_ps(buffer, F(_mm256_load_ps(buffer)));
    std::copy(buffer, buffer + (n - i), y + i);
}

template <__m512 (*F)(__m512)>
SIMD_BENCH_AVX512 void sleef_apply16(const float* x, float* y, std::size_t n) {
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, F(_mm512_loadu_ps(x + i)));
    if (i == n) return;
    const auto rest = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, rest, F(_mm512_maskz_loadu_ps(rest, x + i)));
}

// SLEEF beside xsimd on each path: time over `x`, accuracy over `x` and at the ends of the
// range, special inputs; one Markdown section.
std::string sleef_section(const std::vector<float>& x, int rounds, int reps) {
    namespace vm = tapegrad::vector_math;
    struct Function {
        const char* name;
        ArrayFn sleef_avx2, sleef_avx512, tapegrad;
        double (*ref)(double);
        std::vector<float> far;  // a second range: where it underflows (tanh: where it saturates)
    };
    const Function functions[] = {
        {"exp", sleef_apply8<sleef_exp8>, sleef_apply16<Sleef_expf16_u10avx512f>, vm::exp, ref_exp,
         evenly(-110.0f, -87.0f, 1 << 20)},
        {"sigmoid", sleef_apply8<sleef_sigmoid8>, sleef_apply16<sleef_sigmoid16>, vm::sigmoid,
         ref_sigmoid, evenly(-200.0f, -10.0f, 1 << 20)},
        {"tanh", sleef_apply8<sleef_tanh8>, sleef_apply16<Sleef_tanhf16_u35avx512f>, vm::tanh,
         ref_tanh, evenly(-20.0f, 20.0f, 1 << 20)},
    };
    std::vector<float> y(x.size()), sy(special_inputs.size());
    std::string times, accuracy_rows, special_rows;
    for (const Function& f : functions) {
        const std::vector<Variant> variants{
            {"sleef avx2", Isa::avx2, [&] { f.sleef_avx2(x.data(), y.data(), x.size()); }},
            {"xsimd avx2", Isa::avx2, [&] { f.tapegrad(x.data(), y.data(), x.size()); }},
            {"sleef avx512", Isa::avx512, [&] { f.sleef_avx512(x.data(), y.data(), x.size()); }},
            {"xsimd avx512", Isa::avx512, [&] { f.tapegrad(x.data(), y.data(), x.size()); }},
        };
        const auto r = measure(variants, rounds, reps, 1);
        const double per = 1.0 / static_cast<double>(x.size());
        times += fmt::format("| {} | {} | {} | {:.2f} | {} | {} | {:.2f} |\n", f.name,
                             range_cell(r[0], per, 3), range_cell(r[1], per, 3),
                             r[0].median / r[1].median, range_cell(r[2], per, 3),
                             range_cell(r[3], per, 3), r[2].median / r[3].median);
        std::string near, far;
        for (const auto& [fn, cap, path] :
             {std::tuple<ArrayFn, Isa, const char*>{f.sleef_avx2, Isa::avx2, "SLEEF AVX2"},
              {f.tapegrad, Isa::avx2, "xsimd AVX2"},
              {f.sleef_avx512, Isa::avx512, "SLEEF AVX-512"},
              {f.tapegrad, Isa::avx512, "xsimd AVX-512"}}) {
            tapegrad::set_isa_cap(cap);
            near += " " + ulp_cell(accuracy(fn, x, f.ref)) + " |";
            const Accuracy a = accuracy(fn, f.far, f.ref);
            far += fmt::format(" {}{} |", ulp_cell(a),
                               a.flushed ? fmt::format("; {} flushed to 0", a.flushed) : "");
            fn(special_inputs.data(), sy.data(), sy.size());
            std::string cells;
            for (float v : sy) cells += " " + special_cell(v) + " |";
            special_rows += fmt::format("| {} | {} |{}\n", f.name, path, cells);
        }
        tapegrad::set_isa_cap(Isa::avx512);
        accuracy_rows += fmt::format("| {} on [-10, 10] |{}\n| {} on [{}, {}] |{}\n", f.name, near,
                                     f.name, f.far.front(), f.far.back(), far);
    }
    return "**SLEEF against xsimd, exp / sigmoid / tanh** (SLEEF " +
           fmt::format("{}.{}", SLEEF_VERSION_MAJOR, SLEEF_VERSION_MINOR) +
           ": Sleef_expf8_u10avx2 and Sleef_expf16_u10avx512f, Sleef_tanhf8_u35avx2 and "
           "Sleef_tanhf16_u35avx512f; sigmoid from its exp as tapegrad computes it), the same "
           "10^6 floats, ns per element; ratio: SLEEF's time / xsimd's\n\n"
           "| function | SLEEF AVX2 | xsimd AVX2 | ratio | SLEEF AVX-512 | xsimd AVX-512 | ratio "
           "|\n|---|---|---|---|---|---|---|\n" +
           times +
           "\nMaximum error in float32 ulps, and the input where it occurs (flushed: results 0 "
           "where the correctly rounded result is not)\n\n"
           "| function, inputs | SLEEF AVX2 | xsimd AVX2 | SLEEF AVX-512 | xsimd AVX-512 |\n"
           "|---|---|---|---|---|\n" +
           accuracy_rows +
           "\n| function | path | NaN | -inf | inf | -200 | 200 | -0 |\n"
           "|---|---|---|---|---|---|---|---|\n" +
           special_rows + "\n";
}
#endif

}  // namespace
}  // namespace simd_bench

int main(int argc, char** argv) {
    using namespace simd_bench;
    namespace pg = tapegrad::packed_gemm;
    namespace vm = tapegrad::vector_math;
    CLI::App app{
        "tapegrad: Google Highway vs xsimd on the exp/sigmoid/tanh and packed GEMM kernels"};
    int cpu = 1, rounds = 5, reps = 21;
    std::string out = tb::source_dir() + "/results.md";
    app.add_option("--cpu", cpu, "run on this CPU only (-1: not pinned)");
    app.add_option("--rounds", rounds, "rounds, the variants in turn within each");
    app.add_option("--reps", reps, "timed repetitions per variant and round");
    app.add_option("--out", out, "Markdown file for the section");
    CLI11_PARSE(app, argc, argv);
    std::string command = "bench/simd_library";
    for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];

    if (cpu >= 0 && !run_on_cpu(cpu)) {
        fmt::print(stderr, "simd_library: cannot run on CPU {}\n", cpu);
        return 2;
    }
    if (tapegrad::cpu_isa() != Isa::avx512 || !(hwy::SupportedTargets() & HWY_AVX3)) {
        fmt::print(stderr, "simd_library: needs an AVX-512 CPU (both paths are measured)\n");
        return 2;
    }
    if (!vm::available()) {
        fmt::print(stderr, "simd_library: tapegrad's vector_math is off (TAPEGRAD_VECTOR_MATH?)\n");
        return 2;
    }

    std::string body = fmt::format(
        "Google Highway {}.{}.{} against xsimd {}.{}.{} (tapegrad's kernels), {}, {}, pinned to "
        "CPU {}: `{}`. Highway compiled for AVX2 and AVX-512 in one file (foreach_target.h, its "
        "N_AVX2 and N_AVX3 namespaces called by name); xsimd through tapegrad under "
        "`set_isa_cap(avx2)` / `set_isa_cap(avx512)`. Median of {} rounds x {} repetitions, in "
        "brackets the range of the rounds' medians.\n\n",
        HWY_MAJOR, HWY_MINOR, HWY_PATCH, XSIMD_VERSION_MAJOR, XSIMD_VERSION_MINOR,
        XSIMD_VERSION_PATCH, tb::today(), tb::cpu_model(), cpu, command, rounds, reps);

    // ---- exp, sigmoid, tanh over 10^6 floats in [-10, 10]
    constexpr std::size_t count = 1'000'000;
    std::vector<float> x(count), y(count);
    std::mt19937 rng(28);
    std::uniform_real_distribution<float> uniform(-10.0f, 10.0f);
    for (float& v : x) v = uniform(rng);

    struct Function {
        const char* name;
        ArrayFn hwy_avx2, hwy_avx512, tapegrad;
        double (*ref)(double);
    };
    const Function functions[] = {
        {"exp", N_AVX2::ExpArray, N_AVX3::ExpArray, vm::exp, ref_exp},
        {"sigmoid", N_AVX2::SigmoidArray, N_AVX3::SigmoidArray, vm::sigmoid, ref_sigmoid},
        {"tanh", N_AVX2::TanhArray, N_AVX3::TanhArray, vm::tanh, ref_tanh},
    };
    body +=
        "**exp / sigmoid / tanh**, 10^6 floats uniform in [-10, 10], ns per element (Highway's "
        "sigmoid from its Exp as tapegrad computes it; ratio: Highway's time / xsimd's)\n\n"
        "| function | Highway AVX2 | xsimd AVX2 | ratio | Highway AVX-512 | xsimd AVX-512 | ratio "
        "|\n|---|---|---|---|---|---|---|\n";
    std::string accuracy_rows;
    for (const Function& f : functions) {
        const std::vector<Variant> variants{
            {"hwy avx2", Isa::avx2, [&] { f.hwy_avx2(x.data(), y.data(), count); }},
            {"xsimd avx2", Isa::avx2, [&] { f.tapegrad(x.data(), y.data(), count); }},
            {"hwy avx512", Isa::avx512, [&] { f.hwy_avx512(x.data(), y.data(), count); }},
            {"xsimd avx512", Isa::avx512, [&] { f.tapegrad(x.data(), y.data(), count); }},
        };
        const auto r = measure(variants, rounds, reps, 1);
        const double per = 1.0 / count;
        body += fmt::format("| {} | {} | {} | {:.2f} | {} | {} | {:.2f} |\n", f.name,
                            range_cell(r[0], per, 3), range_cell(r[1], per, 3),
                            r[0].median / r[1].median, range_cell(r[2], per, 3),
                            range_cell(r[3], per, 3), r[2].median / r[3].median);
        // accuracy, each path under its cap
        std::string cells;
        for (const auto& [fn, cap] : {std::pair<ArrayFn, Isa>{f.hwy_avx2, Isa::avx2},
                                      std::pair<ArrayFn, Isa>{f.tapegrad, Isa::avx2},
                                      std::pair<ArrayFn, Isa>{f.hwy_avx512, Isa::avx512},
                                      std::pair<ArrayFn, Isa>{f.tapegrad, Isa::avx512}}) {
            tapegrad::set_isa_cap(cap);
            cells += " " + ulp_cell(accuracy(fn, x, f.ref)) + " |";
        }
        accuracy_rows += fmt::format("| {} on [-10, 10] |{}\n", f.name, cells);
    }
    tapegrad::set_isa_cap(Isa::avx512);

    // exp at the ends of the float range (underflow through the subnormals, and overflow), and
    // sigmoid far left, where it needs e^-x to overflow to inf; x: the first worst input
    struct End {
        const char* label;
        std::vector<float> x;
        std::size_t fn;  // index in functions
    };
    const End ends[] = {
        {"exp on [-110, -87] (underflow)", evenly(-110.0f, -87.0f, 1 << 20), 0},
        {"exp on [87, 200] (overflow)", evenly(87.0f, 200.0f, 1 << 20), 0},
        {"sigmoid on [-200, -10]", evenly(-200.0f, -10.0f, 1 << 20), 1},
    };
    std::string flushed_notes;
    for (const auto& [label, xs, which] : ends) {
        const Function& f = functions[which];
        std::string cells;
        struct Path {
            const char* name;
            ArrayFn fn;
            Isa cap;
        };
        for (const auto& [name, fn, cap] : {Path{"Highway AVX2", f.hwy_avx2, Isa::avx2},
                                            Path{"xsimd AVX2", f.tapegrad, Isa::avx2},
                                            Path{"Highway AVX-512", f.hwy_avx512, Isa::avx512},
                                            Path{"xsimd AVX-512", f.tapegrad, Isa::avx512}}) {
            tapegrad::set_isa_cap(cap);
            const Accuracy a = accuracy(fn, xs, f.ref);
            cells += " " + ulp_cell(a) + " |";
            if (a.flushed)
                flushed_notes += fmt::format(
                    "{}: {} of the {} inputs of {} give 0 where the "
                    "correctly rounded result is not 0.\n",
                    name, a.flushed, xs.size(), label);
        }
        accuracy_rows += fmt::format("| {} |{}\n", label, cells);
    }
    tapegrad::set_isa_cap(Isa::avx512);
    body +=
        "\n**Accuracy**: maximum error in float32 ulps against double-precision std::exp / "
        "std::tanh (1 / (1 + std::exp(-x)) for sigmoid), and the input where it occurs\n\n"
        "| function, inputs | Highway AVX2 | xsimd AVX2 | Highway AVX-512 | xsimd AVX-512 |\n"
        "|---|---|---|---|---|\n" +
        accuracy_rows + "\n";
    if (!flushed_notes.empty()) body += flushed_notes + "\n";

    // special inputs: what each path returns (std:: is the reference)
    const std::vector<float>& sx = special_inputs;
    std::vector<float> sy(sx.size());
    std::string special_rows;
    for (const Function& f : functions) {
        struct Path {
            const char* name;
            ArrayFn fn;
            Isa cap;
        };
        for (const Path& p : {Path{"Highway AVX2", f.hwy_avx2, Isa::avx2},
                              Path{"xsimd AVX2", f.tapegrad, Isa::avx2},
                              Path{"Highway AVX-512", f.hwy_avx512, Isa::avx512},
                              Path{"xsimd AVX-512", f.tapegrad, Isa::avx512}}) {
            tapegrad::set_isa_cap(p.cap);
            p.fn(sx.data(), sy.data(), sx.size());
            std::string cells;
            for (float v : sy) cells += " " + special_cell(v) + " |";
            special_rows += fmt::format("| {} | {} |{}\n", f.name, p.name, cells);
        }
        std::string cells;
        for (float v : sx) cells += " " + special_cell(static_cast<float>(f.ref(v))) + " |";
        special_rows += fmt::format("| {} | std:: (double, rounded) |{}\n", f.name, cells);
    }
    tapegrad::set_isa_cap(Isa::avx512);
    body +=
        "**Special inputs**: what each path returns\n\n"
        "| function | path | NaN | -inf | inf | -200 | 200 | -0 |\n"
        "|---|---|---|---|---|---|---|---|\n" +
        special_rows + "\n";
#ifdef TAPEGRAD_BENCH_SLEEF
    body += sleef_section(x, rounds, reps);
#endif

    // ---- packed GEMM, C = A B, float32
    struct Shape {
        std::size_t m, k, n;
    };
    body +=
        "**Packed GEMM** C[m, n] = A[m, k] B[k, n], float32, B packed once outside the timed "
        "loop on both sides; µs per product (GFLOP/s); ratio: Highway's time / tapegrad's. "
        "Highway's kernel: tapegrad's algorithm and blocking (AVX-512 panels of 48 columns, 8 "
        "rows of C per call; AVX2 16 columns, 6 rows). tapegrad: "
        "`packed_gemm::PackedMatrix(b, k, n, n, false).multiply(m, a, k, c)`.\n\n"
        "| A x B | Highway AVX2 | tapegrad AVX2 | ratio | Highway AVX-512 | tapegrad AVX-512 | "
        "ratio | max \\|ΔC\\| / max \\|C\\| |\n|---|---|---|---|---|---|---|---|\n";
    for (const Shape s : {Shape{32, 128, 512}, Shape{64, 256, 1024}}) {
        std::mt19937 gen(static_cast<unsigned>(s.m * s.n));
        std::normal_distribution<float> normal(0.0f, 1.0f);
        std::vector<float> a(s.m * s.k), b(s.k * s.n);
        for (float& v : a) v = normal(gen);
        for (float& v : b) v = normal(gen);
        const double flop = 2.0 * static_cast<double>(s.m * s.k * s.n);

        const Packed hb2 = N_AVX2::Pack(b.data(), s.k, s.n);
        const Packed hb3 = N_AVX3::Pack(b.data(), s.k, s.n);
        // tapegrad packs for the isa() in force when the matrix is packed
        std::unique_ptr<pg::PackedMatrix> tb2, tb3;
        tapegrad::set_isa_cap(Isa::avx2);
        const bool avx2_ok = pg::available();
        if (avx2_ok) tb2 = std::make_unique<pg::PackedMatrix>(b.data(), s.k, s.n, s.n, false);
        tapegrad::set_isa_cap(Isa::avx512);
        if (!pg::available()) {
            fmt::print(stderr, "simd_library: packed_gemm is off (TAPEGRAD_PACKED_GEMM?)\n");
            return 2;
        }
        tb3 = std::make_unique<pg::PackedMatrix>(b.data(), s.k, s.n, s.n, false);

        std::vector<float> c_h2(s.m * s.n), c_t2(s.m * s.n), c_h3(s.m * s.n), c_t3(s.m * s.n);
        std::vector<Variant> variants{
            {"hwy avx2", Isa::avx2,
             [&] { N_AVX2::Multiply(hb2, s.m, a.data(), s.k, c_h2.data()); }},
            {"hwy avx512", Isa::avx512,
             [&] { N_AVX3::Multiply(hb3, s.m, a.data(), s.k, c_h3.data()); }},
            {"xsimd avx512", Isa::avx512, [&] { tb3->multiply(s.m, a.data(), s.k, c_t3.data()); }},
        };
        if (avx2_ok)
            variants.push_back(
                {"xsimd avx2", Isa::avx2, [&] { tb2->multiply(s.m, a.data(), s.k, c_t2.data()); }});
        // enough calls per repetition for about a millisecond
        const int inner = std::max(1, static_cast<int>(1e6 / (flop / 50.0)));
        const auto r = measure(variants, rounds, reps, inner);

        // the check: Highway's products against tapegrad's (same algorithm, so near-identical)
        double max_c = 0, max_diff = 0;
        for (std::size_t i = 0; i < c_t3.size(); ++i) {
            max_c = std::max(max_c, std::fabs(static_cast<double>(c_t3[i])));
            max_diff =
                std::max({max_diff, std::fabs(static_cast<double>(c_h3[i]) - c_t3[i]),
                          std::fabs(static_cast<double>(c_h2[i]) - c_t3[i]),
                          avx2_ok ? std::fabs(static_cast<double>(c_t2[i]) - c_t3[i]) : 0.0});
        }
        const double rel = max_diff / max_c;
        if (!(rel <= 1e-4)) {
            fmt::print(stderr,
                       "simd_library: [{},{}]x[{},{}]: Highway's C differs from tapegrad's "
                       "by {:.3g} relative\n",
                       s.m, s.k, s.k, s.n, rel);
            return 1;
        }
        const auto cell = [&](const Result& x) {
            return fmt::format("{}; {:.0f} GFLOP/s", range_cell(x, 1e-3, 1), flop / x.median);
        };
        body += fmt::format("| [{},{}]x[{},{}] | {} | {} | {} | {} | {} | {:.2f} | {:.1e} |\n", s.m,
                            s.k, s.k, s.n, cell(r[0]), avx2_ok ? cell(r[3]) : "n/a",
                            avx2_ok ? fmt::format("{:.2f}", r[0].median / r[3].median) : "n/a",
                            cell(r[1]), cell(r[2]), r[1].median / r[2].median, rel);
    }

    fmt::print("{}", body);
    tb::write_section(out, "simd-library", body);
    return 0;
}

#endif  // HWY_ONCE
