// The TAPEGRAD_* environment switches, read in core/config.cpp and nowhere else: once, at the
// first call of switches(). docs/performance.md lists them. Set them before the program starts.
#pragma once

#include <cstddef>

namespace tapegrad {

struct Switches {
    // TAPEGRAD_PACKED_GEMM: "0" keeps the packed GEMM kernel off (kernels/packed_gemm.hpp).
    bool packed_gemm = true;
    // TAPEGRAD_VECTOR_MATH: "0" keeps the AVX-512 exp, sigmoid and tanh off
    // (kernels/vector_math.hpp).
    bool vector_math = true;
    // TAPEGRAD_BUFFER_CACHE_MIB, in bytes: the buffer cache's limit at start-up
    // (core/memory.hpp). 256 MiB by default, 0 (no cache) under AddressSanitizer. A value that
    // is not a whole number of MiB from 0 to 2^40 is reported on stderr and the default kept.
    std::size_t buffer_cache_bytes = 0;
    // TAPEGRAD_LARGE_CACHE_MIB, in bytes: the large-buffer cache's limit at start-up
    // (core/memory.hpp). A quarter of the machine's memory by default, 0 under
    // AddressSanitizer; a bad value is reported as for TAPEGRAD_BUFFER_CACHE_MIB.
    std::size_t large_cache_bytes = 0;
    // TAPEGRAD_MALLOC_TUNING: "0" makes tune_malloc() do nothing (core/memory.hpp).
    bool malloc_tuning = true;
};

// The switches as the environment held them at the first call.
const Switches& switches();

}  // namespace tapegrad
