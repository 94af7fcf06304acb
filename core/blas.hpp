// What the BLAS under matmul is doing. Debian's OpenBLAS 0.3.21 does not recognise some
// recent CPUs and silently falls back to generic kernels 3-5x slower; setting
// OPENBLAS_CORETYPE (e.g. Haswell or SkylakeX) before the process starts fixes it.
#pragma once

#include <string>

namespace tapegrad {

struct BlasInfo {
    std::string corename;     // the kernels OpenBLAS chose, e.g. "Haswell", "Prescott"
    bool cpu_has_avx2 = false;
    bool cpu_has_avx512 = false;
    bool slow_path = false;   // generic kernels on a CPU that has AVX2 or AVX-512
};

BlasInfo blas_info();

// One line naming the fix when OpenBLAS runs generic kernels on an AVX2/AVX-512 CPU;
// empty otherwise.
std::string blas_warning();

// Prints blas_warning() to stderr once per process when it is not empty.
void warn_if_slow_blas();

}  // namespace tapegrad
