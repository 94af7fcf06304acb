#!/usr/bin/env bash
# One command for everything: ./run.sh deps|build|test|demo|bench|help
set -euo pipefail

DEMO=compare_cells           # the executable under build/examples/ that `demo` runs
BENCHES=(tape_overhead)      # expected under build/bench/; any other executable there runs too
BUILD_DIR=build
PACKAGES=(cmake g++ make libxtensor-dev libxsimd-dev xtl-dev libxtensor-blas-dev libopenblas-dev
          liblapack-dev libtbb-dev doctest-dev libfmt-dev nlohmann-json3-dev libcli11-dev
          gnuplot-nox)

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"

usage() {
    cat <<EOF
Usage: ./run.sh <command> [args]

  deps    install the missing Debian packages (apt-get; sudo when not root)
  build   deps, then configure (Release) and build into ./$BUILD_DIR
  test    build, then run every test with ctest
  demo    build, then run examples/$DEMO (extra args are passed on)
  bench   deps (+ python3-torch when apt can install it), build, run the benchmarks
  help    this text

OpenBLAS kernels can be forced with OPENBLAS_CORETYPE (e.g. Haswell, SkylakeX); see README.md.
EOF
}

installed() {
    dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed$'
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

deps() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        installed "$p" || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "run.sh: all packages present"
        return 0
    fi
    echo "run.sh: installing ${missing[*]}"
    apt_install "${missing[@]}"
}

build() {
    deps
    cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release
    cmake --build "$BUILD_DIR" -j"$(nproc)"
}

run_tests() {
    build
    ctest --test-dir "$BUILD_DIR" --output-on-failure
}

demo() {
    build
    local exe="$BUILD_DIR/examples/$DEMO"
    if [ ! -x "$exe" ]; then
        echo "run.sh: $exe was not built" >&2
        return 1
    fi
    "$exe" "$@"
}

bench() {
    deps
    if ! installed python3-torch; then
        if ! apt_install python3-torch; then
            echo "run.sh: notice: python3-torch could not be installed; benchmarks run without the PyTorch comparison"
        fi
    fi
    build
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
            echo "== bench/$name"
            "$exe"
        done < <(find "$BUILD_DIR/bench" -maxdepth 1 -type f -perm -u+x | sort)
    fi
}

cmd="${1:-help}"
[ $# -gt 0 ] && shift
case "$cmd" in
    deps) deps ;;
    build) build ;;
    test) run_tests ;;
    demo) demo "$@" ;;
    bench) bench ;;
    help|-h|--help) usage ;;
    *) usage >&2; exit 2 ;;
esac
