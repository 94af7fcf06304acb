"""The timing rule the PyTorch peers share with their C++ benches (bench/common.hpp)."""
import json
import resource
import time

import torch


def time_and_report(step, reps, min_warm):
    """Warms up (at least min_warm steps and 0.25 s), times reps steps and prints one JSON line.

    Each repetition counts as the smaller of its wall and process CPU time, as the C++ benches
    do: on a shared machine a preempted run keeps its CPU time, and a run on two threads is
    measured by its wall time."""
    warm, start = 0, time.perf_counter()
    while warm < min_warm or time.perf_counter() - start < 0.25:
        step()
        warm += 1
    times = []
    for _ in range(reps):
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        times.append(min(time.perf_counter() - wall, time.process_time() - cpu) * 1e3)
    times.sort()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"ms": times[len(times) // 2], "ms_min": times[0], "peak_rss_mib": peak,
                      "torch": torch.__version__}))
