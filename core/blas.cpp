#include "core/blas.hpp"

#include <cblas.h>
#include <cstdio>
#include <mutex>

namespace tapegrad {

BlasInfo blas_info() {
    BlasInfo info;
    const char* core = openblas_get_corename();
    info.corename = core ? core : "unknown";
    __builtin_cpu_init();
    info.cpu_has_avx2 = __builtin_cpu_supports("avx2");
    info.cpu_has_avx512 = __builtin_cpu_supports("avx512f");
    const std::string& c = info.corename;
    const bool generic = c == "Prescott" || c == "Core2" || c == "Penryn" || c == "Nehalem" ||
                         c == "Atom" || c == "Dunnington" || c == "Barcelona" || c == "unknown";
    info.slow_path = generic && (info.cpu_has_avx2 || info.cpu_has_avx512);
    return info;
}

std::string blas_warning() {
    const BlasInfo info = blas_info();
    if (!info.slow_path) return {};
    const char* fix = info.cpu_has_avx512 ? "SkylakeX" : "Haswell";
    return "tapegrad: warning: OpenBLAS is using its generic '" + info.corename +
           "' kernels on a CPU with " + (info.cpu_has_avx512 ? "AVX-512" : "AVX2") +
           "; matmul runs several times slower. Set OPENBLAS_CORETYPE=" + fix +
           " in the environment before starting the program.";
}

void warn_if_slow_blas() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (auto w = blas_warning(); !w.empty()) std::fprintf(stderr, "%s\n", w.c_str());
    });
}

}  // namespace tapegrad
