// The TAPEGRAD_* environment switches, read in core/config.cpp and nowhere else: once, at the
// first call of switches(). docs/performance.md lists them. Set them before the program starts.
#pragma once

#include <cstddef>

namespace tapegrad {

// Instruction sets the kernels have code for. A CPU offers generic and one family: neon (aarch64's
// Advanced SIMD), or avx2 (AVX2 with FMA) and avx512, of which each runs what the one before runs.
enum class Isa { generic, neon, avx2, avx512 };
// "generic", "neon", "avx2", "avx512": the names TAPEGRAD_ISA takes.
const char* isa_name(Isa isa);

struct Switches {
    // TAPEGRAD_PACKED_GEMM: "0" keeps the packed GEMM kernel off (kernels/packed_gemm.hpp).
    bool packed_gemm = true;
    // TAPEGRAD_VECTOR_MATH: "0" keeps the vectorized exp, sigmoid and tanh off
    // (kernels/vector_math.hpp).
    bool vector_math = true;
    // TAPEGRAD_ISA: "avx512", "avx2", "neon" or "generic", the best instruction set the kernels
    // may use (kernels/isa.hpp: isa()), to try the slower paths on a faster CPU. No cap by
    // default; another value is reported on stderr and ignored.
    Isa isa_cap = Isa::avx512;
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
