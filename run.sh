#!/usr/bin/env bash
# One command for everything: ./run.sh deps|build|test|demo|bench|arm64|docs|help
set -euo pipefail

DEMO=compare_cells           # the executable under build/examples/ that `demo` runs
BENCHES=(tape_overhead ops rnn scan)  # expected under build/bench/; any other executable there runs too
BUILD_DIR=build
PACKAGES=(cmake g++ make libxtensor-dev libxsimd-dev xtl-dev libxtensor-blas-dev libopenblas-dev
          liblapack-dev libtbb-dev doctest-dev libfmt-dev nlohmann-json3-dev libcli11-dev
          gnuplot-nox graphviz libopenmpi-dev openmpi-bin)
# Only for `fuzz`: clang with its libFuzzer and sanitizer runtimes. Clang 16, as Debian 12's
# default clang 14 lacks std::source_location. (`sanitize` uses g++, whose sanitizer runtimes
# come with it.)
FUZZ_CXX=clang++-16
FUZZ_PACKAGES=(clang-16 libclang-rt-16-dev)
FUZZ_TARGETS=(safetensors_loader ops)   # fuzz/<name>.cpp -> build-fuzz/fuzz/fuzz_<name>
# Only for `arm64`: Debian's cross toolchain, qemu-user and the arm64 builds of the libraries
# tapegrad links (multiarch); the header-only ones in PACKAGES serve as they are
# (cmake/aarch64-linux-gnu.cmake).
ARM64_PACKAGES=(crossbuild-essential-arm64 qemu-user libtbb-dev:arm64 libopenblas-dev:arm64
                liblapack-dev:arm64 libfmt-dev:arm64)

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"

usage() {
    cat <<EOF
Usage: ./run.sh <command> [args]

  deps    install the missing Debian packages (apt-get; sudo when not root)
  build   deps, then configure (Release) and build into ./$BUILD_DIR
  test    build, then run every test with ctest
  demo    build, then run examples/$DEMO (extra args are passed on)
  bench   deps (+ python3-torch when apt can install it), build, run the benchmarks
  sanitize  build the tests with AddressSanitizer + UndefinedBehaviorSanitizer (g++, -O1) into
          ./build-sanitize and run them; any finding (leaks too) fails
  fuzz [seconds]  build the libFuzzer targets (clang, installed when missing) into ./build-fuzz
          and run each on a copy of its seed corpus fuzz/corpus/<target> (default 60 s each)
  format  check that every C++ file follows .clang-format (clang-format 14, installed when
          missing); \`./run.sh format fix\` rewrites them
  arm64   cross-compile the library and the tests for aarch64 (Debian's cross toolchain and
          :arm64 packages, installed when missing) into ./build-arm64 and run ctest under
          qemu-user
  docs    render docs/design.dot to docs/design.svg and .png (graphviz, installed when missing)
  soak [steps]  build, then run bench/soak: LSTM training for [steps] (default 100000) steps,
          RSS at the start and the end; fails if memory grows
  help    this text

OpenBLAS kernels can be forced with OPENBLAS_CORETYPE (e.g. Haswell, SkylakeX); see README.md.

Training across processes (MPI, when libopenmpi-dev is installed; run.sh installs it):
  mpirun -np N [--allow-run-as-root] build/examples/char_lm --text input.txt --threads 1 [flags]
  (--oversubscribe for more ranks than cores, --hostfile FILE across machines)
EOF
}

installed() {
    # with the arm64 packages in too (`arm64`), a bare name is ambiguous: this machine's is meant
    { dpkg -s "$1" 2>/dev/null || dpkg -s "$1:$(dpkg --print-architecture)" 2>/dev/null; } |
        grep -q '^Status: install ok installed$'
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        echo "run.sh: need root (or sudo) to run: $*" >&2
        return 1
    fi
}

APT_UPDATED=0
apt_install() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

# Installs those of the given packages that are missing.
install_missing() {
    local missing=() p
    for p in "$@"; do
        installed "$p" || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "run.sh: all packages present"
        return 0
    fi
    echo "run.sh: installing ${missing[*]}"
    apt_install "${missing[@]}"
}

deps() {
    install_missing "${PACKAGES[@]}"
}

build() {
    deps
    cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DTAPEGRAD_BUILD_BENCH=ON
    cmake --build "$BUILD_DIR" -j"$(nproc)"
}

run_tests() {
    build
    # Each doctest case is a ctest test in its own process (tests/CMakeLists.txt): run side by side.
    ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$(nproc)"
}

demo() {
    build
    local exe="$BUILD_DIR/examples/$DEMO"
    if [ ! -x "$exe" ]; then
        echo "run.sh: $exe was not built" >&2
        return 1
    fi
    # the figures the README shows are regenerated in docs/figures (a later --figures wins)
    "$exe" --figures docs/figures "$@"
}

bench() {
    deps
    if ! installed python3-torch; then
        if ! apt_install python3-torch; then
            echo "run.sh: notice: python3-torch could not be installed; benchmarks run without the PyTorch comparison"
        fi
    fi
    build
    # Both sides of every comparison get the same OpenBLAS kernels. Debian's OpenBLAS 0.3.21
    # picks slower kernels than the CPU supports on some recent CPUs (see README.md); when
    # OPENBLAS_CORETYPE is unset, choose the best this CPU runs and say so.
    if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
        if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
        elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell
        fi
        if [ -n "${OPENBLAS_CORETYPE:-}" ]; then
            echo "run.sh: OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE for both tapegrad and PyTorch (set it to override)"
        fi
    fi
    local name exe ran=()
    for name in "${BENCHES[@]}"; do
        exe="$BUILD_DIR/bench/$name"
        if [ -x "$exe" ]; then
            echo "== bench/$name"
            "$exe"
            ran+=("$name")
        else
            echo "run.sh: notice: bench/$name is not built; skipped"
        fi
    done
    # Benchmarks added since BENCHES was last edited.
    if [ -d "$BUILD_DIR/bench" ]; then
        while IFS= read -r exe; do
            name="$(basename "$exe")"
            [[ " ${ran[*]} " == *" $name "* ]] && continue
            [ "$name" = soak ] && continue  # long-running: ./run.sh soak
            echo "== bench/$name"
            "$exe"
        done < <(find "$BUILD_DIR/bench" -maxdepth 1 -type f -perm -u+x | sort)
    fi
}

# Sanitizer settings shared by `sanitize` and `fuzz`: stop at the first finding, leaks
# included. Options already in the environment come last and win.
sanitizer_env() {
    export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
}

sanitize() {
    deps
    local dir=build-sanitize
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
        -DTAPEGRAD_SANITIZE=address,undefined \
        -DTAPEGRAD_BUILD_EXAMPLES=OFF -DTAPEGRAD_BUILD_BENCH=OFF
    cmake --build "$dir" -j"$(nproc)" --target tapegrad_tests
    sanitizer_env
    echo "run.sh: $dir/tests/tapegrad_tests (ASan + UBSan)"
    "$dir/tests/tapegrad_tests"
}

fuzz() {
    local seconds="${1:-60}" dir=build-fuzz p target
    deps
    install_missing "${FUZZ_PACKAGES[@]}"
    cmake -S . -B "$dir" -DCMAKE_CXX_COMPILER="$FUZZ_CXX" -DCMAKE_BUILD_TYPE=Debug \
        -DCMAKE_CXX_FLAGS_DEBUG="-O1 -gline-tables-only" -DTAPEGRAD_SANITIZE=address,undefined \
        -DTAPEGRAD_FUZZ=ON -DTAPEGRAD_BUILD_TESTS=OFF -DTAPEGRAD_BUILD_EXAMPLES=OFF \
        -DTAPEGRAD_BUILD_BENCH=OFF
    cmake --build "$dir" -j"$(nproc)" --target "${FUZZ_TARGETS[@]/#/fuzz_}"
    sanitizer_env
    # The targets run side by side, each on a scratch copy of its seed corpus (so the inputs
    # it adds stay out of the repository), with its crash files and log beside it.
    local run="$dir/run" pids=() failed=()
    rm -rf "$run"
    for target in "${FUZZ_TARGETS[@]}"; do
        mkdir -p "$run/$target/corpus"
        cp fuzz/corpus/"$target"/* "$run/$target/corpus/"
        echo "run.sh: fuzz/$target for ${seconds} s"
        "$dir/fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=10 \
            -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 -artifact_prefix="$run/$target/" \
            "$run/$target/corpus" >"$run/$target.log" 2>&1 &
        pids+=($!)
    done
    for p in "${!FUZZ_TARGETS[@]}"; do
        target="${FUZZ_TARGETS[$p]}"
        if wait "${pids[$p]}"; then
            echo "== fuzz/$target: no finding ($(find "$run/$target/corpus" -type f | wc -l) inputs in its corpus now)"
            grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$run/$target.log" || true
        else
            failed+=("$target")
            echo "== fuzz/$target: FINDING; the log ($run/$target.log) ends:"
            tail -n 60 "$run/$target.log"
            ls "$run/$target"/crash-* "$run/$target"/leak-* "$run/$target"/timeout-* "$run/$target"/oom-* 2>/dev/null || true
        fi
    done
    if [ ${#failed[@]} -gt 0 ]; then
        echo "run.sh: fuzz: findings in ${failed[*]}; rerun one with $dir/fuzz/fuzz_<target> <crash file>" >&2
        return 1
    fi
}

format() {
    installed clang-format || apt_install clang-format
    local files
    # tracked files and new ones git does not ignore, so a file is checked before its commit
    mapfile -t files < <(git ls-files --cached --others --exclude-standard '*.cpp' '*.hpp')
    if [ "${1:-}" = fix ]; then
        clang-format -i "${files[@]}"
        return
    fi
    echo "run.sh: clang-format --dry-run on ${#files[@]} files"
    clang-format --dry-run --Werror "${files[@]}"
}

arm64() {
    local dir=build-arm64
    deps
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        echo "run.sh: adding the arm64 architecture to dpkg"
        as_root dpkg --add-architecture arm64
        APT_UPDATED=0  # its package lists are not there yet
    fi
    install_missing "${ARM64_PACKAGES[@]}"
    cmake -S . -B "$dir" -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" \
        -DCMAKE_BUILD_TYPE=Release -DTAPEGRAD_BUILD_EXAMPLES=OFF -DTAPEGRAD_BUILD_BENCH=OFF \
        -DTAPEGRAD_WITH_MPI=OFF
    cmake --build "$dir" -j"$(nproc)"
    # every test binary runs under qemu-aarch64 (CMAKE_CROSSCOMPILING_EMULATOR)
    ctest --test-dir "$dir" --output-on-failure -j"$(nproc)"
}

docs() {
    installed graphviz || apt_install graphviz
    dot -Tsvg docs/design.dot -o docs/design.svg
    dot -Tpng -Gdpi=110 docs/design.dot -o docs/design.png
    echo "run.sh: wrote docs/design.svg and docs/design.png"
}

soak() {
    local steps="${1:-100000}"
    build
    local exe="$BUILD_DIR/bench/soak"
    if [ ! -x "$exe" ]; then
        echo "run.sh: $exe was not built" >&2
        return 1
    fi
    "$exe" --steps "$steps"
}

cmd="${1:-help}"
[ $# -gt 0 ] && shift
case "$cmd" in
    deps) deps ;;
    build) build ;;
    test) run_tests ;;
    demo) demo "$@" ;;
    bench) bench ;;
    sanitize) sanitize ;;
    fuzz) fuzz "$@" ;;
    format) format "$@" ;;
    arm64) arm64 ;;
    docs) docs ;;
    soak) soak "$@" ;;
    help|-h|--help) usage ;;
    *) usage >&2; exit 2 ;;
esac
