#include "core/config.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include <unistd.h>

namespace tapegrad {

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::generic: return "generic";
        case Isa::neon: return "neon";
        case Isa::avx2: return "avx2";
        case Isa::avx512: return "avx512";
    }
    return "?";
}

namespace {

// An on/off switch: on unless the variable is "0".
bool on_unless_zero(const char* name) {
    const char* v = std::getenv(name);
    return !(v && std::strcmp(v, "0") == 0);
}

// A size in MiB from the environment, or `fallback` (reported on stderr when not a number).
std::size_t mib_switch(const char* name, std::size_t fallback) {
    const char* v = std::getenv(name);
    if (!v || !*v) return fallback;
    char* end = nullptr;
    errno = 0;
    const unsigned long long mib = std::strtoull(v, &end, 10);
    if (errno == 0 && end && *end == '\0' && v[0] != '-' && mib <= (std::size_t{1} << 40))
        return static_cast<std::size_t>(mib) << 20;
    std::fprintf(stderr, "tapegrad: %s='%s' is not a number of MiB from 0 to 2^40; using %zu\n",
                 name, v, fallback >> 20);
    return fallback;
}

Isa isa_cap() {
    const char* name = "TAPEGRAD_ISA";
    const char* v = std::getenv(name);
    if (!v || !*v) return Isa::avx512;
    for (Isa isa : {Isa::avx512, Isa::avx2, Isa::neon, Isa::generic})
        if (std::strcmp(v, isa_name(isa)) == 0) return isa;
    std::fprintf(stderr, "tapegrad: %s='%s' is not avx512, avx2, neon or generic; ignored\n", name,
                 v);
    return Isa::avx512;
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool sanitized = true;  // AddressSanitizer sees every free: a use after free is caught
#else
constexpr bool sanitized = false;
#endif

std::size_t buffer_cache_bytes() {
    return mib_switch("TAPEGRAD_BUFFER_CACHE_MIB", sanitized ? 0 : std::size_t{256} << 20);
}

std::size_t large_cache_bytes() {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    const std::size_t memory =
        pages > 0 && page > 0 ? static_cast<std::size_t>(pages) * static_cast<std::size_t>(page)
                              : std::size_t{4} << 30;
    return mib_switch("TAPEGRAD_LARGE_CACHE_MIB", sanitized ? 0 : memory / 4);
}

}  // namespace

const Switches& switches() {
    static const Switches s{.packed_gemm = on_unless_zero("TAPEGRAD_PACKED_GEMM"),
                            .vector_math = on_unless_zero("TAPEGRAD_VECTOR_MATH"),
                            .isa_cap = isa_cap(),
                            .buffer_cache_bytes = buffer_cache_bytes(),
                            .large_cache_bytes = large_cache_bytes(),
                            .malloc_tuning = on_unless_zero("TAPEGRAD_MALLOC_TUNING")};
    return s;
}

}  // namespace tapegrad
