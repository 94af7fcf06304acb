// What the BLAS under matmul is doing. Debian's OpenBLAS 0.3.21 does not recognise some
// recent CPUs and silently falls back to generic kernels 3-5x slower; setting
// OPENBLAS_CORETYPE (e.g. Haswell or SkylakeX) before the process starts fixes it.
#pragma once

#include <cstddef>
#include <string>

namespace tapegrad {

struct BlasInfo {
    std::string corename;  // the kernels OpenBLAS chose, e.g. "Haswell", "Prescott"
    bool cpu_has_avx2 = false;
    bool cpu_has_avx512 = false;
    bool slow_path = false;  // generic kernels on an AVX2/AVX-512 CPU, or AVX2 kernels on AVX-512
};

BlasInfo blas_info();
// The same judgement for given kernels and CPU features (blas_info uses it).
BlasInfo classify_blas(std::string corename, bool cpu_has_avx2, bool cpu_has_avx512);

// One line naming the fix when OpenBLAS runs generic kernels on an AVX2/AVX-512 CPU;
// empty otherwise.
std::string blas_warning();
std::string blas_warning(const BlasInfo& info);

// Prints blas_warning() to stderr once per process when it is not empty.
void warn_if_slow_blas();

// c[m, n] = op(a) op(b) + beta c in row-major storage (cblas_sgemm / cblas_dgemm); lda and ldb
// are the stored row lengths of a and b, c's is n.
void gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, const float* a,
          std::size_t lda, const float* b, std::size_t ldb, float* c, float beta = 0);
void gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, const double* a,
          std::size_t lda, const double* b, std::size_t ldb, double* c, double beta = 0);

// Sets OpenBLAS to one thread and stops its idle worker threads, so that TBB's workers are
// the only threads doing tapegrad's work (set_num_threads and parallel_backward call it).
// OpenBLAS starts a thread per core when it loads. With one thread set they get no work, but
// each keeps spinning on sched_yield for about 2^28 cycles (~0.1 s here) after start-up or
// after its last job, and on a 2-core machine that takes half of the second core from a TBB
// worker: 2-thread steps of the small benchmark configs ran at 1.6-1.8 ms instead of 0.9 ms
// for their first ~0.1 s. OpenBLAS starts its threads again by itself if a caller later asks
// it for more than one. Cheap when OpenBLAS is single-threaded already.
void use_single_threaded_blas();

}  // namespace tapegrad
