#include "kernels/packed_gemm.hpp"

#include <algorithm>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <vector>

#include "core/config.hpp"
#include "kernels/cpu.hpp"
#include "kernels/packed_gemm_kernels.hpp"

namespace tapegrad::packed_gemm {

namespace {

constexpr std::size_t kc = one_pass_depth;  // depth per pass: one panel's slice stays in L1

// the kernels for isa(), which available() has checked is not generic
const detail::Kernels& current_kernels() {
#if defined(__x86_64__)
    return isa() == Isa::avx512 ? detail::kernels_avx512() : detail::kernels_avx2();
#elif defined(__aarch64__)
    return detail::kernels_neon();
#else
    // Elsewhere the kernels do not exist: isa() is generic, so available() is false and nothing
    // packs.
    throw std::logic_error("packed_gemm: no kernels for this architecture");
#endif
}

tapegrad::detail::IsaSwitch& state() {
    static tapegrad::detail::IsaSwitch s(switches().packed_gemm);
    return s;
}

}  // namespace

bool available() { return state().on(); }

void set_enabled(bool on) { state().set(on); }

namespace {
// The panels across n columns, left to right, `vectors` vectors of `lanes` floats wide. With
// AVX-512's 48-column panels, when 49 to 64 columns are left the next panel takes 32 of them, so
// that the last one holds 17 to 32 (2 vectors) instead of 1 to 16: the 1-vector kernel
// broadcasts as many elements of a for a third of the products, and the 16 columns left of
// n = 256 (a large RNN's, or the backward of a large LSTM's, per-step product) took about a
// quarter of the time of the other 240.
std::vector<PackedMatrix::Panel> panel_layout(std::size_t n, const detail::Kernels& kernels) {
    const std::size_t lanes = kernels.lanes, nr = lanes * kernels.vectors;
    std::vector<PackedMatrix::Panel> out;
    for (std::size_t col = 0; col < n;) {
        const std::size_t left = n - col;
        const std::size_t cols =
            nr > 2 * lanes && left > nr && left <= nr + lanes ? 2 * lanes : std::min(nr, left);
        out.push_back({col, cols, (cols + lanes - 1) / lanes});
        col += cols;
    }
    return out;
}
}  // namespace

PackedMatrix::PackedMatrix(const float* b, std::size_t k, std::size_t n, std::size_t ld,
                           bool transposed)
    : kernels_(&current_kernels()), k_(k), n_(n) {
    // row i of B: b[i * ld + j], or b[j * ld + i] when transposed
    fill([&](std::size_t i) { return transposed ? b + i : b + i * ld; }, transposed ? ld : 1);
}

PackedMatrix::PackedMatrix(std::span<const RowBlock> blocks, std::size_t n)
    : kernels_(&current_kernels()), k_(0), n_(n) {
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
    const std::size_t lanes = kernels_->lanes;
    layout_ = panel_layout(n_, *kernels_);
    const std::size_t count =
        n_ == 0 ? 0 : (layout_.back().col0 + layout_.back().vectors * lanes) * k_;
    // every element is written below, so the storage starts uninitialised (no memset)
    const std::size_t bytes = std::max<std::size_t>(64, (count * sizeof(float) + 63) / 64 * 64);
    panels_.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    if (!panels_) throw std::bad_alloc();
    for (const Panel& p : layout_) {
        const std::size_t width = p.vectors * lanes;
        float* panel = panel_data(p);
        if (stride == 1) {  // rows of B lie contiguous: vector copies
            for (std::size_t i = 0; i < k_; ++i)
                kernels_->copy_row(row(i) + p.col0, p.cols, p.vectors, panel + i * width);
            continue;
        }
        // B's columns lie contiguous: tiles of `lanes` of them, each read along its length
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
    const std::size_t lanes = kernels_->lanes, mr = kernels_->block_rows;
    // kernel call for rows [i, i + rows) of c, depth [k0, k0 + depth), one panel; the first
    // depth slice adds the addend, later ones what the slices before left in c
    auto block = [&](std::size_t i, std::size_t rows, std::size_t k0, std::size_t depth,
                     const Panel& p) {
        const float* base = k0 == 0 ? addend : c;
        const std::size_t base_ld = k0 == 0 ? addend_ld : n_;
        kernels_->multiply[trans_a][rows][p.vectors](
            depth, trans_a ? a + k0 * lda + i : a + i * lda + k0, lda,
            panel_data(p) + k0 * p.vectors * lanes, c + i * n_ + p.col0, n_, p.cols,
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
