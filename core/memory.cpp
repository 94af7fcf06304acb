#include "core/memory.hpp"

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace tapegrad {

namespace {

MallocTuning tune() {
    MallocTuning t;
#if defined(__GLIBC__)
    if (const char* v = std::getenv("TAPEGRAD_MALLOC_TUNING"); v && std::strcmp(v, "0") == 0) return t;
    t.mmap_threshold = std::size_t{32} << 20;   // glibc's own upper bound for its dynamic threshold
    t.trim_threshold = std::size_t{256} << 20;
    t.applied = mallopt(M_MMAP_THRESHOLD, static_cast<int>(t.mmap_threshold)) == 1 &&
                mallopt(M_TRIM_THRESHOLD, static_cast<int>(t.trim_threshold)) == 1 &&
                mallopt(M_TOP_PAD, 16 << 20) == 1;
#endif
    return t;
}

}  // namespace

MallocTuning malloc_tuning() {
    static const MallocTuning applied = tune();
    return applied;
}

}  // namespace tapegrad
