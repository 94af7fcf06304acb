#include "kernels/blas.hpp"

#include <cblas.h>
#include <dlfcn.h>
#include <cstdio>
#include <mutex>

namespace tapegrad {

BlasInfo blas_info() {
    const char* core = openblas_get_corename();
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return classify_blas(core ? core : "unknown", __builtin_cpu_supports("avx2"),
                         __builtin_cpu_supports("avx512f"));
#else
    return classify_blas(core ? core : "unknown", false, false);  // no AVX: nothing to warn of
#endif
}

BlasInfo classify_blas(std::string corename, bool cpu_has_avx2, bool cpu_has_avx512) {
    BlasInfo info{std::move(corename), cpu_has_avx2, cpu_has_avx512, false};
    const std::string& c = info.corename;
    const bool generic = c == "Prescott" || c == "Core2" || c == "Penryn" || c == "Nehalem" ||
                         c == "Atom" || c == "Dunnington" || c == "Barcelona" || c == "unknown";
    // AVX2 kernels on an AVX-512 CPU: OpenBLAS 0.3.21 picks them for CPUs it does not know
    // (recent AMD EPYC, for one); sgemm on [64,320]x[320,1024] measured 1.4x slower there
    // than with SkylakeX.
    const bool avx2_only = c == "Haswell" || c == "Zen";
    info.slow_path = (generic && (info.cpu_has_avx2 || info.cpu_has_avx512)) ||
                     (avx2_only && info.cpu_has_avx512);
    return info;
}

std::string blas_warning() { return blas_warning(blas_info()); }

std::string blas_warning(const BlasInfo& info) {
    if (!info.slow_path) return {};
    const char* fix = info.cpu_has_avx512 ? "SkylakeX" : "Haswell";
    const bool generic = info.corename != "Haswell" && info.corename != "Zen";
    return "tapegrad: warning: OpenBLAS is using its " +
           std::string(generic ? "generic '" : "AVX2 '") + info.corename +
           "' kernels on a CPU with " + (info.cpu_has_avx512 ? "AVX-512" : "AVX2") +
           "; matmul runs " + (generic ? "several times" : "up to 1.5x") +
           " slower. Set OPENBLAS_CORETYPE=" + fix +
           " in the environment before starting the program.";
}

void warn_if_slow_blas() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (auto w = blas_warning(); !w.empty()) std::fprintf(stderr, "%s\n", w.c_str());
    });
}

namespace {
blasint i(std::size_t v) { return static_cast<blasint>(v); }
CBLAS_TRANSPOSE op(bool t) { return t ? CblasTrans : CblasNoTrans; }
}  // namespace

void gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, const float* a,
          std::size_t lda, const float* b, std::size_t ldb, float* c, float beta) {
    cblas_sgemm(CblasRowMajor, op(ta), op(tb), i(m), i(n), i(k), 1.0f, a, i(lda), b, i(ldb), beta,
                c, i(n));
}

void gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, const double* a,
          std::size_t lda, const double* b, std::size_t ldb, double* c, double beta) {
    cblas_dgemm(CblasRowMajor, op(ta), op(tb), i(m), i(n), i(k), 1.0, a, i(lda), b, i(ldb), beta, c,
                i(n));
}

void use_single_threaded_blas() {
    static std::mutex mutex;
    static bool stopped = false;  // guarded by mutex: the threads OpenBLAS started are gone
    std::lock_guard lock(mutex);
    if (stopped && openblas_get_num_threads() == 1) return;
    openblas_set_num_threads(1);
    // blas_thread_shutdown_ is what OpenBLAS itself calls before fork() and at exit; it is
    // exported but not declared in its headers, so it is looked up rather than linked.
    using Shutdown = int (*)();
    if (auto shutdown = reinterpret_cast<Shutdown>(dlsym(RTLD_DEFAULT, "blas_thread_shutdown_")))
        shutdown();
    stopped = true;
}

}  // namespace tapegrad
