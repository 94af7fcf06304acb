// A float32 matrix product whose right operand is packed once and then reused.
//
// A recurrent weight is multiplied at every time step by a few dozen rows of state. BLAS
// repacks the weight on each of those calls, and for few rows that packing and its small-row
// kernels dominate: OpenBLAS 0.3.21 multiplies [32,128] x [128,512] at about half of its
// large-matrix throughput. PackedMatrix stores the operand once in the layout a SIMD kernel
// streams (panels a few vectors wide, each row of a panel contiguous), and multiply() runs that
// kernel directly. The kernels are written once on xsimd (kernels/packed_gemm_kernels.hpp) for
// AVX-512, AVX2 and NEON; a matrix is packed for isa() at the time and multiplied with that set.
// matmul and addmm use it inside a WeightPackScope (ops/linalg.hpp), and for products of many
// rows and a shallow depth (a sequence's input projection, see max_rows).
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <vector>

namespace tapegrad::packed_gemm {

namespace detail {
struct Kernels;  // one instruction set's kernels (kernels/packed_gemm_kernels.hpp)
}

// True when isa() is not generic (kernels/isa.hpp), TAPEGRAD_PACKED_GEMM is not "0" in the
// environment (read once per process) and set_enabled(false) is not in force.
bool available();
// Turns the packed kernel off (products go to BLAS) or back on, for the whole process; for
// comparing the two in one run. Products from then on follow it; backward rules of earlier
// products keep the packings they were given.
void set_enabled(bool on);

// Products with more rows than this go to BLAS, whose larger kernels win there, unless the
// depth is at most one_pass_depth: multiply() then writes c's rows whole, one block of rows
// after the other, and beat OpenBLAS on a sequence's input projection ([T·B, I] x [I, G·H]).
inline constexpr std::size_t max_rows = 96;
// The depth a kernel call covers in one pass (a panel's slice of it stays in L1).
inline constexpr std::size_t one_pass_depth = 256;

// `rows` consecutive rows of a matrix, each of its full row length, starting at `data`.
struct RowBlock {
    const float* data;
    std::size_t rows;
};

// Packing and multiplying both require available().
class PackedMatrix {
public:
    // B [k, n] with B(i, j) = transposed ? b[j * ld + i] : b[i * ld + j].
    PackedMatrix(const float* b, std::size_t k, std::size_t n, std::size_t ld, bool transposed);
    // B [Σ rows, n]: the blocks' rows one after the other (no stacked copy needed).
    PackedMatrix(std::span<const RowBlock> blocks, std::size_t n);

    std::size_t rows() const { return k_; }
    std::size_t cols() const { return n_; }

    // Columns [col0, col0 + cols) of B, stored as k rows of `vectors` SIMD vectors, zero-padded.
    struct Panel {
        std::size_t col0, cols, vectors;
    };

    // c[m, n] = a[m, k] B, plus `addend` when given: its row i at addend + i * addend_ld
    // (addend_ld 0 repeats one row, a bias); addend may be c itself (addend_ld n). a has row
    // length lda, c row length n. Requires available().
    void multiply(std::size_t m, const float* a, std::size_t lda, float* c,
                  const float* addend = nullptr, std::size_t addend_ld = 0) const;
    // c[m, n] = atᵀ B for at [k, m] with row length ldat: a weight's gradient xᵀ y from the
    // stacked rows of x and y, without transposing x. Requires available().
    void multiply_transposed(std::size_t m, const float* at, std::size_t ldat, float* c) const;

private:
    void run(std::size_t m, const float* a, std::size_t lda, bool trans_a, float* c,
             const float* addend, std::size_t addend_ld) const;
    template <class Row>
    void fill(Row row, std::size_t stride);  // packs B(i, j) = row(i)[j * stride]
    struct Free {
        void operator()(float* p) const { std::free(p); }
    };
    float* panel_data(const Panel& p) const;
    const detail::Kernels* kernels_;  // the instruction set packed for
    std::size_t k_, n_;
    std::vector<Panel> layout_;  // left to right (kernels/packed_gemm.cpp: panel_layout)
    std::unique_ptr<float[], Free>
        panels_;  // each panel's k rows one after the other, 64-byte aligned
};

}  // namespace tapegrad::packed_gemm
