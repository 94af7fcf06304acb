// Tensor buffers come from malloc. glibc hands out large blocks (from 128 KiB at first; one
// [64, 1024] float32 tensor is 256 KiB) as fresh pages from the kernel and returns memory to
// the kernel whenever the top of the heap is free. A training step frees and reallocates
// the same buffers every step, so with the defaults every step page-faults on all of them.
//
// At start-up tapegrad raises glibc's mmap and trim thresholds once (mallopt), so freed
// buffers are reused by the next step instead — what PyTorch's caching allocator does for
// its own tensors. It changes malloc for the whole process: memory freed by one step stays
// mapped for the next (peak RSS is unchanged). Set TAPEGRAD_MALLOC_TUNING=0 in the
// environment to keep glibc's defaults.
#pragma once

#include <cstddef>

namespace tapegrad {

struct MallocTuning {
    bool applied = false;             // false: opted out, or not glibc
    std::size_t mmap_threshold = 0;   // blocks up to this size come from the heap
    std::size_t trim_threshold = 0;   // free memory kept at the heap's top before trimming
};

// What was set at start-up.
MallocTuning malloc_tuning();

}  // namespace tapegrad
