// Which instruction set the kernels use. The kernels (kernels/vector_math, kernels/packed_gemm)
// have code for avx512, avx2 and neon, and run where isa() is one of them; isa() is the best the
// CPU runs, unless a cap (TAPEGRAD_ISA, or set_isa_cap() at run time) holds it lower, so that the
// AVX2 path can be measured and tested on an AVX-512 machine. Different paths may differ in the
// last bits of a float32 result; one path gives the same bits on any number of threads.
#pragma once

#include "core/config.hpp"  // Isa, isa_name

namespace tapegrad {

// The best instruction set this CPU runs (checked once): avx512 with AVX-512F, avx2 with AVX2
// and FMA, neon on aarch64, generic otherwise and on other architectures.
Isa cpu_isa();
// The instruction set the kernels use: the lesser of cpu_isa() and the cap within the CPU's
// family. A cap from the other family counts as generic on x86-64 (neon there) and as no cap on
// aarch64 (avx2 or avx512 there).
Isa isa();
// The cap for the whole process, from TAPEGRAD_ISA at start (no cap by default); for tests and
// benchmarks comparing the paths in one run. Calls from then on follow it.
void set_isa_cap(Isa cap);

}  // namespace tapegrad
