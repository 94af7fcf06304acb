#include "kernels/packed_gemm.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <utility>
#include <vector>

#include "core/config.hpp"
#include "kernels/cpu.hpp"

namespace tapegrad::packed_gemm {

namespace {

constexpr std::size_t lanes = 16;            // floats in a zmm register
constexpr std::size_t vectors = 3;           // zmm registers across a panel
constexpr std::size_t nr = lanes * vectors;  // columns in a panel
constexpr std::size_t mr = 8;                // rows of c a kernel call keeps in registers
constexpr std::size_t kc = one_pass_depth;   // depth per pass: one panel's slice stays in L1
// With a transposed (a weight gradient's xᵀ, thousands of rows lda apart), each depth step
// reads a new cache line of a, too far from the last for the hardware to fetch it ahead; the
// kernel asks for the line this many steps ahead. In a small LSTM's training step the
// transposed products' share of the kernels' time fell from 41-44% to 36-38% (perf samples).
constexpr std::size_t prefetch_ahead = 8;

#if defined(__x86_64__)
// c[r, 0:cols] = addend[r, 0:cols] (when given) + sum over kk < depth of a[r, kk] * panel[kk, :], r < MR. MR*NV accumulators
// stay in registers; each depth step broadcasts one element of each row of a against NV vectors
// of the panel, whose rows are NV vectors long. The last panels of a matrix may use fewer
// vectors (NV < vectors) and mask the last one (cols < 16 NV).
// With TransA, a holds the rows of c as its columns: element (r, kk) is a[kk * lda + r], so
// the MR broadcasts of one depth step come from one cache line.
template <std::size_t MR, std::size_t NV, bool TransA>
__attribute__((target("avx512f"))) void kernel(std::size_t depth, const float* a, std::size_t lda,
                                               const float* panel, float* c, std::size_t ldc,
                                               std::size_t cols, const float* addend,
                                               std::size_t addend_ld) {
    __m512 acc[MR][NV];
    for (std::size_t r = 0; r < MR; ++r)
        for (std::size_t v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
    for (std::size_t kk = 0; kk < depth; ++kk) {
        if constexpr (TransA)  // (integer arithmetic: the last steps' addresses lie past a's end)
            _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<std::uintptr_t>(a) +
                                                       (kk + prefetch_ahead) * lda * sizeof(float)),
                         _MM_HINT_T0);
        __m512 b[NV];
        for (std::size_t v = 0; v < NV; ++v)
            b[v] = _mm512_load_ps(panel + kk * NV * lanes + v * lanes);
        for (std::size_t r = 0; r < MR; ++r) {
            const __m512 x = _mm512_set1_ps(TransA ? a[kk * lda + r] : a[r * lda + kk]);
            for (std::size_t v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(x, b[v], acc[r][v]);
        }
    }
    for (std::size_t v = 0; v < NV; ++v) {
        const std::size_t valid = std::min(lanes, cols - v * lanes);
        const __mmask16 mask = static_cast<__mmask16>((1u << valid) - 1u);
        for (std::size_t r = 0; r < MR; ++r) {
            __m512 value = acc[r][v];
            if (addend)
                value = _mm512_add_ps(
                    value, _mm512_maskz_loadu_ps(mask, addend + r * addend_ld + v * lanes));
            _mm512_mask_storeu_ps(c + r * ldc + v * lanes, mask, value);
        }
    }
}
#else
// Off x86-64 the kernels do not exist: isa() is generic there, so available() is false and
// nothing calls them.
[[noreturn]] void unavailable() {
    throw std::logic_error("packed_gemm: the kernels are AVX-512 (x86-64 only)");
}
template <std::size_t MR, std::size_t NV, bool TransA>
void kernel(std::size_t, const float*, std::size_t, const float*, float*, std::size_t, std::size_t,
            const float*, std::size_t) {
    unavailable();
}
#endif

using Kernel = void (*)(std::size_t, const float*, std::size_t, const float*, float*, std::size_t,
                        std::size_t, const float*, std::size_t);

template <bool TransA, std::size_t... R>
constexpr auto kernel_table(std::index_sequence<R...>) {
    // [rows][vectors]: row 0 and column 0 unused
    return std::array<std::array<Kernel, vectors + 1>, sizeof...(R)>{
        {{nullptr, kernel < R == 0 ? 1 : R, 1, TransA >, kernel < R == 0 ? 1 : R, 2, TransA >,
          kernel < R == 0 ? 1 : R, 3, TransA > }...}};
}
// kernels[transposed a][r][v] handles r rows with v vectors: the full kernel is
// kernels[t][mr][vectors]
constexpr std::array kernels{kernel_table<false>(std::make_index_sequence<mr + 1>{}),
                             kernel_table<true>(std::make_index_sequence<mr + 1>{})};

// the kernels are AVX-512 intrinsics
detail::IsaSwitch& state() {
    static detail::IsaSwitch s(switches().packed_gemm, Isa::avx512);
    return s;
}

}  // namespace

bool available() { return state().on(); }

void set_enabled(bool on) { state().set(on); }

namespace {
// The panels across n columns, left to right: 48 wide (3 vectors). When 49 to 64 columns are
// left, the next panel takes 32 of them, so that the last one holds 17 to 32 (2 vectors) instead
// of 1 to 16: the 1-vector kernel broadcasts as many elements of a for a third of the products,
// and the 16 columns left of n = 256 (a large RNN's, or the backward of a large LSTM's,
// per-step product) took about a quarter of the time of the other 240.
std::vector<PackedMatrix::Panel> panel_layout(std::size_t n) {
    std::vector<PackedMatrix::Panel> out;
    for (std::size_t col = 0; col < n;) {
        const std::size_t left = n - col;
        const std::size_t cols = left > nr && left <= nr + lanes ? 2 * lanes : std::min(nr, left);
        out.push_back({col, cols, (cols + lanes - 1) / lanes});
        col += cols;
    }
    return out;
}

// to[0, 16 nv) = from[0, cols), then zeros: one row of a panel from a contiguous row of B.
#if defined(__x86_64__)
__attribute__((target("avx512f"))) void copy_panel_row(const float* from, std::size_t cols,
                                                       std::size_t nv, float* to) {
    for (std::size_t v = 0; v < nv; ++v) {
        const std::size_t at = v * lanes;
        const std::size_t valid = cols > at ? std::min(lanes, cols - at) : 0;
        const __m512 x =
            valid == lanes
                ? _mm512_loadu_ps(from + at)
                : _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << valid) - 1u), from + at);
        _mm512_store_ps(to + at, x);
    }
}
#else
void copy_panel_row(const float*, std::size_t, std::size_t, float*) { unavailable(); }
#endif
}  // namespace

PackedMatrix::PackedMatrix(const float* b, std::size_t k, std::size_t n, std::size_t ld,
                           bool transposed)
    : k_(k), n_(n) {
    // row i of B: b[i * ld + j], or b[j * ld + i] when transposed
    fill([&](std::size_t i) { return transposed ? b + i : b + i * ld; }, transposed ? ld : 1);
}

PackedMatrix::PackedMatrix(std::span<const RowBlock> blocks, std::size_t n) : k_(0), n_(n) {
    std::vector<const float*> rows;
    for (const RowBlock& block : blocks)
        for (std::size_t i = 0; i < block.rows; ++i) rows.push_back(block.data + i * n);
    k_ = rows.size();
    fill([&](std::size_t i) { return rows[i]; }, 1);
}

// Panel p's rows start at col0 * k: every panel but the last is as wide as its vectors.
float* PackedMatrix::panel_data(const Panel& p) const { return panels_.get() + p.col0 * k_; }

template <class Row>
void PackedMatrix::fill(Row row, std::size_t stride) {
    layout_ = panel_layout(n_);
    const std::size_t count =
        n_ == 0 ? 0 : (layout_.back().col0 + layout_.back().vectors * lanes) * k_;
    // every element is written below, so the storage starts uninitialised (no memset)
    const std::size_t bytes = std::max<std::size_t>(64, (count * sizeof(float) + 63) / 64 * 64);
    panels_.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    if (!panels_) throw std::bad_alloc();
    for (const Panel& p : layout_) {
        const std::size_t width = p.vectors * lanes;
        float* panel = panel_data(p);
        if (stride == 1) {  // rows of B lie contiguous: vector copies (the caller checked AVX-512)
            for (std::size_t i = 0; i < k_; ++i)
                copy_panel_row(row(i) + p.col0, p.cols, p.vectors, panel + i * width);
            continue;
        }
        // B's columns lie contiguous: tiles of 16 of them, each read along its length
        for (std::size_t i0 = 0; i0 < k_; i0 += lanes) {
            const std::size_t tile = std::min(lanes, k_ - i0);
            for (std::size_t j = 0; j < width; ++j) {
                float* to = panel + i0 * width + j;
                if (j >= p.cols) {
                    for (std::size_t r = 0; r < tile; ++r)
                        to[r * width] = 0.0f;  // the kernel reads whole vectors
                    continue;
                }
                const float* from = row(i0) + (p.col0 + j) * stride;
                for (std::size_t r = 0; r < tile; ++r) to[r * width] = from[r];
            }
        }
    }
}

void PackedMatrix::multiply(std::size_t m, const float* a, std::size_t lda, float* c,
                            const float* addend, std::size_t addend_ld) const {
    run(m, a, lda, false, c, addend, addend_ld);
}

void PackedMatrix::multiply_transposed(std::size_t m, const float* at, std::size_t ldat,
                                       float* c) const {
    run(m, at, ldat, true, c, nullptr, 0);
}

void PackedMatrix::run(std::size_t m, const float* a, std::size_t lda, bool trans_a, float* c,
                       const float* addend, std::size_t addend_ld) const {
    if (m == 0 || n_ == 0) return;
    if (k_ == 0) {
        for (std::size_t i = 0; i < m; ++i)
            if (addend) std::copy_n(addend + i * addend_ld, n_, c + i * n_);
            else std::fill_n(c + i * n_, n_, 0.0f);
        return;
    }
    // kernel call for rows [i, i + rows) of c, depth [k0, k0 + depth), one panel; the first
    // depth slice adds the addend, later ones what the slices before left in c
    auto block = [&](std::size_t i, std::size_t rows, std::size_t k0, std::size_t depth,
                     const Panel& p) {
        const float* base = k0 == 0 ? addend : c;
        const std::size_t base_ld = k0 == 0 ? addend_ld : n_;
        kernels[trans_a][rows][p.vectors](depth, trans_a ? a + k0 * lda + i : a + i * lda + k0, lda,
                                          panel_data(p) + k0 * p.vectors * lanes,
                                          c + i * n_ + p.col0, n_, p.cols,
                                          base ? base + i * base_ld + p.col0 : nullptr, base_ld);
    };
    if (k_ <= kc) {
        // One depth pass: row blocks outermost, so each block's rows of c are written whole,
        // left to right, while the panels come from L2. Panel by panel instead, a product of
        // many rows (a sequence's input projection) writes c a narrow strip at a time down all
        // its rows, and ran at about half the speed.
        for (std::size_t i = 0; i < m; i += mr)
            for (const Panel& p : layout_) block(i, std::min(mr, m - i), 0, k_, p);
        return;
    }
    // Deeper: depth slices outermost, so the row blocks after the first find each slice of a
    // panel in L1 (a weight's gradient xᵀ y streams y's thousands of rows once).
    for (std::size_t k0 = 0; k0 < k_; k0 += kc)
        for (const Panel& p : layout_)
            for (std::size_t i = 0; i < m; i += mr)
                block(i, std::min(mr, m - i), k0, std::min(kc, k_ - k0), p);
}

}  // namespace tapegrad::packed_gemm
