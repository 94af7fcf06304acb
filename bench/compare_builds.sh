#!/usr/bin/env bash
# Times one training step of two builds of tapegrad in alternating runs of bench/rnn --one, on
# one thread pinned to one CPU, and prints each pair and the median ratio B/A per config:
#   bench/compare_builds.sh BUILD_A BUILD_B [PAIRS]
# BUILD_A and BUILD_B are build folders (each with bench/rnn), e.g. a worktree of the commit
# before a change and this one. Both runs get the same OPENBLAS_CORETYPE (SkylakeX or Haswell
# when unset, as ./run.sh bench chooses). Env: CPU (default: the last one), CONFIGS, CELLS,
# ARGS (more options for bench/rnn --one, e.g. --ragged).
set -euo pipefail
a=$1 b=$2 pairs=${3:-7}
cpu=${CPU:-$(($(nproc) - 1))}
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
    elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell; fi
fi
ms() {  # build cell config reps
    "$1/bench/rnn" --one --cell "$2" --config "$3" --threads 1 --cpu "$cpu" --reps "$4" --no-sgemm ${ARGS:-} |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["ms"])'
}
echo "A = $a, B = $b, CPU $cpu, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-}, $pairs pairs"
echo "| config | cell | A ms (median) | B ms (median) | B/A per pair | median B/A |"
echo "|---|---|---|---|---|---|"
for config in ${CONFIGS:-small large}; do
    reps=41
    [ "$config" = large ] && reps=11
    for cell in ${CELLS:-rnn lstm gru}; do
        as=() bs=() ratios=()
        for ((p = 0; p < pairs; ++p)); do  # A first in even pairs, B first in odd ones
            if ((p % 2 == 0)); then ta=$(ms "$a" "$cell" "$config" $reps); tb=$(ms "$b" "$cell" "$config" $reps)
            else tb=$(ms "$b" "$cell" "$config" $reps); ta=$(ms "$a" "$cell" "$config" $reps); fi
            as+=("$ta") bs+=("$tb")
            ratios+=("$(python3 -c "print(f'{$tb / $ta:.3f}')")")
        done
        python3 - "$config" "$cell" "${as[*]}" "${bs[*]}" "${ratios[*]}" <<'PY'
import statistics, sys
config, cell, a, b, r = sys.argv[1:]
med = lambda s: statistics.median(float(x) for x in s.split())
print(f"| {config} | {cell} | {med(a):.2f} | {med(b):.2f} | {r} | {med(r):.3f} |")
PY
    done
done
