// The packed GEMM kernels written once on xsimd batches, for kernels/packed_gemm_avx512.cpp,
// kernels/packed_gemm_avx2.cpp and kernels/packed_gemm_neon.cpp to compile each for its
// instruction set; kernels/packed_gemm.cpp packs and multiplies with the set isa() names when the
// matrix is packed, through the Kernels table alone. The rule of kernels/vector_math_kernels.hpp
// holds here too: the templates below are instantiated in those three files only, everything in
// an anonymous namespace, no std algorithms, no weak symbol built for a CPU that may lack it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>  // index_sequence

#include <xsimd/xsimd.hpp>

namespace tapegrad::packed_gemm::detail {

// c[r, 0:cols] = addend[r, 0:cols] (when given) + Σ_{kk < depth} a[r, kk] panel[kk, :] for the
// first `rows` rows of c, the panel being `vectors` vectors wide (the table's indices).
using Kernel = void (*)(std::size_t depth, const float* a, std::size_t lda, const float* panel,
                        float* c, std::size_t ldc, std::size_t cols, const float* addend,
                        std::size_t addend_ld);

inline constexpr std::size_t max_block_rows = 8, max_vectors = 3;

// One instruction set's kernels and the packing they read: panels `vectors` vectors of `lanes`
// floats wide; a kernel call keeps `block_rows` rows of c in registers.
struct Kernels {
    std::size_t lanes, vectors, block_rows;
    // multiply[transposed a][rows][vectors], rows ≤ block_rows, vectors ≤ this->vectors
    Kernel multiply[2][max_block_rows + 1][max_vectors + 1];
    // to[0, lanes nv) = from[0, cols), then zeros: one row of a panel from a contiguous row of B
    void (*copy_row)(const float* from, std::size_t cols, std::size_t nv, float* to);
};

const Kernels& kernels_avx512();  // 16 lanes, 3 vectors, 8 rows: 24 of the 32 zmm registers
const Kernels& kernels_avx2();    // 8 lanes, 2 vectors, 6 rows: 12 of the 16 ymm registers
const Kernels& kernels_neon();    // 4 lanes, 3 vectors, 8 rows: 24 of the 32 q registers

}  // namespace tapegrad::packed_gemm::detail

namespace {
namespace packed_gemm_kernels {

using tapegrad::packed_gemm::detail::Kernel;
using tapegrad::packed_gemm::detail::Kernels;

// With a transposed (a weight gradient's xᵀ, thousands of rows lda apart), each depth step
// reads a new cache line of a, too far from the last for the hardware to fetch it ahead; the
// kernel asks for the line this many steps ahead. In a small LSTM's training step the
// transposed products' share of the kernels' time fell from 41-44% to 36-38% (perf samples).
constexpr std::size_t prefetch_ahead = 8;

// out[0, valid) = value[0, valid) (+ add[0, valid) when given), touching nothing past them: the
// last columns of c. Out of line, so that the kernel keeps its accumulators in registers to the
// end (inline, GCC kept all 24 of AVX-512's on the stack: 5% slower at depth 128, 15% at 32).
template <class Arch>
[[gnu::noinline]] void store_first(xsimd::batch<float, Arch> value, std::size_t valid, float* out,
                                   const float* add) {
    alignas(Arch::alignment()) float buffer[xsimd::batch<float, Arch>::size];
    value.store_aligned(buffer);
    for (std::size_t j = 0; j < valid; ++j) out[j] = add ? buffer[j] + add[j] : buffer[j];
}

// MR * NV accumulators stay in registers; each depth step broadcasts one element of each row of
// a against the panel's NV vectors. The last panels of a matrix may be narrower (NV below the
// set's vectors, cols below lanes NV). With TransA, a holds the rows of c as its columns:
// element (r, kk) is a[kk * lda + r], so the MR broadcasts of one depth step share a cache line.
template <class Arch, std::size_t MR, std::size_t NV, bool TransA>
void kernel(std::size_t depth, const float* a, std::size_t lda, const float* panel, float* c,
            std::size_t ldc, std::size_t cols, const float* addend, std::size_t addend_ld) {
    using floats = xsimd::batch<float, Arch>;
    constexpr std::size_t lanes = floats::size;
    floats acc[MR][NV];
    for (std::size_t r = 0; r < MR; ++r)
        for (std::size_t v = 0; v < NV; ++v) acc[r][v] = floats(0.0f);
    for (std::size_t kk = 0; kk < depth; ++kk) {
        if constexpr (TransA)  // (integer arithmetic: the last steps' addresses lie past a's end)
            __builtin_prefetch(reinterpret_cast<const void*>(
                reinterpret_cast<std::uintptr_t>(a) + (kk + prefetch_ahead) * lda * sizeof(float)));
        floats b[NV];
        for (std::size_t v = 0; v < NV; ++v)
            b[v] = floats::load_aligned(panel + (kk * NV + v) * lanes);
        for (std::size_t r = 0; r < MR; ++r) {
            const floats x(TransA ? a[kk * lda + r] : a[r * lda + kk]);
            for (std::size_t v = 0; v < NV; ++v) acc[r][v] = xsimd::fma(x, b[v], acc[r][v]);
        }
    }
    for (std::size_t v = 0; v < NV; ++v) {
        const std::size_t at = v * lanes, valid = cols - at < lanes ? cols - at : lanes;
        if (valid == lanes) {
            for (std::size_t r = 0; r < MR; ++r) {
                const floats value =
                    addend ? acc[r][v] + floats::load_unaligned(addend + r * addend_ld + at)
                           : acc[r][v];
                value.store_unaligned(c + r * ldc + at);
            }
            continue;
        }
        for (std::size_t r = 0; r < MR; ++r)
            store_first<Arch>(acc[r][v], valid, c + r * ldc + at,
                              addend ? addend + r * addend_ld + at : nullptr);
    }
}

template <class Arch>
void copy_row(const float* from, std::size_t cols, std::size_t nv, float* to) {
    using floats = xsimd::batch<float, Arch>;
    constexpr std::size_t lanes = floats::size;
    for (std::size_t v = 0; v < nv; ++v) {
        const std::size_t at = v * lanes;
        if (cols >= at + lanes) {
            floats::load_unaligned(from + at).store_aligned(to + at);
            continue;
        }
        for (std::size_t j = 0; j < lanes; ++j) to[at + j] = at + j < cols ? from[at + j] : 0.0f;
    }
}

// The table for Arch with panels of NV vectors and blocks of MR rows: entries past MR rows or NV
// vectors stay null.
template <class Arch, std::size_t NV, std::size_t MR>
constexpr Kernels make_kernels() {
    Kernels k{xsimd::batch<float, Arch>::size, NV, MR, {}, &copy_row<Arch>};
    [&]<std::size_t... R>(std::index_sequence<R...>) {
        (
            [&] {
                constexpr std::size_t rows = R + 1;
                [&]<std::size_t... V>(std::index_sequence<V...>) {
                    ((k.multiply[0][rows][V + 1] = &kernel<Arch, rows, V + 1, false>,
                      k.multiply[1][rows][V + 1] = &kernel<Arch, rows, V + 1, true>),
                     ...);
                }
                (std::make_index_sequence<NV>{});
            }(),
            ...);
    }
    (std::make_index_sequence<MR>{});
    return k;
}

}  // namespace packed_gemm_kernels
}  // namespace
