#include "core/config.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tapegrad {

namespace {

// An on/off switch: on unless the variable is "0".
bool on_unless_zero(const char* name) {
    const char* v = std::getenv(name);
    return !(v && std::strcmp(v, "0") == 0);
}

std::size_t buffer_cache_bytes() {
#if defined(__SANITIZE_ADDRESS__)
    const std::size_t fallback = 0;  // AddressSanitizer sees every free: a use after free is caught
#else
    const std::size_t fallback = std::size_t{256} << 20;
#endif
    const char* v = std::getenv("TAPEGRAD_BUFFER_CACHE_MIB");
    if (!v || !*v) return fallback;
    char* end = nullptr;
    errno = 0;
    const unsigned long long mib = std::strtoull(v, &end, 10);
    if (errno == 0 && end && *end == '\0' && v[0] != '-' && mib <= (std::size_t{1} << 40))
        return static_cast<std::size_t>(mib) << 20;
    std::fprintf(stderr,
                 "tapegrad: TAPEGRAD_BUFFER_CACHE_MIB='%s' is not a number of MiB "
                 "from 0 to 2^40; using %zu\n",
                 v, fallback >> 20);
    return fallback;
}

}  // namespace

const Switches& switches() {
    static const Switches s{.packed_gemm = on_unless_zero("TAPEGRAD_PACKED_GEMM"),
                            .vector_math = on_unless_zero("TAPEGRAD_VECTOR_MATH"),
                            .buffer_cache_bytes = buffer_cache_bytes(),
                            .malloc_tuning = on_unless_zero("TAPEGRAD_MALLOC_TUNING")};
    return s;
}

}  // namespace tapegrad
