// The vectorized exp, sigmoid and tanh (kernels/vector_math.hpp) behind the float32 forward of
// the exp, sigmoid and tanh ops: within a few ulps of a double-precision reference over their
// whole range, and the special values (NaN, ±inf, ±0, overflow, underflow) as std:: gives them,
// on each instruction set the CPU runs (AVX-512, AVX2); and the cap on the instruction set.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include <unistd.h>

#include <tapegrad/tapegrad.hpp>

using namespace tapegrad;

namespace {

// Distance in float32 ulps between a result and the double reference rounded to float.
double ulps(float got, double want) {
    const float w = static_cast<float>(want);
    if (std::isnan(w)) return std::isnan(got) ? 0 : 1e9;
    if (got == w) return 0;
    if (std::isinf(w) || std::isinf(got)) return 1e9;
    const double spacing =
        std::nextafter(std::abs(w), std::numeric_limits<float>::infinity()) - std::abs(w);
    return std::abs(static_cast<double>(got) - static_cast<double>(w)) / spacing;
}

struct Case {
    const char* name;
    void (*fast)(const float*, float*, std::size_t);
    double (*exact)(double);
    double max_ulps;
};

const Case cases[] = {
    {"exp", vector_math::exp, [](double x) { return std::exp(x); }, 2},
    {"sigmoid", vector_math::sigmoid, [](double x) { return 1 / (1 + std::exp(-x)); }, 3},
    {"tanh", vector_math::tanh, [](double x) { return std::tanh(x); }, 3},
};

// Restores the cap the environment gave when it goes out of scope.
struct RestoreCap {
    ~RestoreCap() { set_isa_cap(switches().isa_cap); }
};

// Runs `check` on each path the CPU offers (avx512 and avx2, or neon), the cap set to each in
// turn.
template <class F>
void on_every_path(F check) {
    RestoreCap restore;
    int paths = 0;
    for (Isa path : {Isa::avx512, Isa::avx2, Isa::neon}) {
        if (cpu_isa() < path || (path == Isa::neon) != (cpu_isa() == Isa::neon)) continue;
        set_isa_cap(path);
        if (!vector_math::available()) break;    // TAPEGRAD_VECTOR_MATH=0
        const std::string isa = isa_name(path);  // (a char* would be logged as a pointer)
        CAPTURE(isa);
        check();
        ++paths;
    }
    if (paths == 0)
        MESSAGE("no AVX2 or NEON here (or TAPEGRAD_VECTOR_MATH=0): xtensor's versions are used");
}

}  // namespace

TEST_CASE("vector math: exp, sigmoid and tanh stay within a few ulps everywhere") {
    // every 397th float32 bit pattern between -120 and 120: ~5.6 million values, all exponents
    std::vector<float> x;
    for (std::uint32_t bits = 0; bits < 0x7f800000u; bits += 397) {
        float v;
        std::memcpy(&v, &bits, sizeof v);
        if (v > 120) break;
        x.push_back(v);
        x.push_back(-v);
    }
    std::vector<float> y(x.size());
    on_every_path([&] {
        for (const Case& c : cases) {
            const std::string function = c.name;
            CAPTURE(function);
            c.fast(x.data(), y.data(), x.size());
            double worst = 0;
            float worst_at = 0, first_miss = 0;
            std::size_t subnormal_misses = 0;
            for (std::size_t i = 0; i < x.size(); ++i) {
                const double want = c.exact(x[i]);
                // below the normal range the spacing is fixed: within one of it (e^x, and
                // sigmoid(x) = e^x / (1 + e^x), follow the subnormals down to 0)
                if (std::abs(want) < std::numeric_limits<float>::min()) {
                    if (std::abs(y[i] - want) > std::numeric_limits<float>::denorm_min() &&
                        subnormal_misses++ == 0)
                        first_miss = x[i];
                    continue;
                }
                const double e = ulps(y[i], want);
                if (e > worst) {
                    worst = e;
                    worst_at = x[i];
                }
            }
            CAPTURE(worst_at);
            CHECK(worst <= c.max_ulps);
            CAPTURE(first_miss);
            CHECK(subnormal_misses == 0);
        }
    });
}

TEST_CASE("vector math: special values and lengths that are not a multiple of 16") {
    const float inf = std::numeric_limits<float>::infinity(),
                nan = std::numeric_limits<float>::quiet_NaN();
    // -95 and -100: sigmoid's value there is subnormal (1 / (1 + e^-x) would give 0)
    const std::vector<float> x{nan,    inf,    -inf,    0.0f,   -0.0f,   89.0f, 88.0f, -104.0f,
                               -87.5f, -95.0f, -100.0f, 1e-30f, -1e-30f, 20.0f, -20.0f};
    on_every_path([&] {
        for (const Case& c : cases) {
            const std::string function = c.name;
            CAPTURE(function);
            // every length from 1 to 15 with a 1-element offset: the tail and unaligned starts
            for (std::size_t n = 1; n <= x.size(); ++n) {
                std::vector<float> y(n + 1, 12345.0f);
                c.fast(x.data(), y.data() + 1, n);
                CHECK(y[0] == 12345.0f);  // nothing written before the output
                for (std::size_t i = 0; i < n; ++i) {
                    CAPTURE(x[i]);
                    const float want = static_cast<float>(c.exact(x[i]));
                    if (std::isnan(want)) CHECK(std::isnan(y[i + 1]));
                    else if (want == 0)
                        CHECK(std::abs(y[i + 1]) <= std::numeric_limits<float>::denorm_min());
                    else CHECK(ulps(y[i + 1], c.exact(x[i])) <= c.max_ulps);
                }
            }
        }
        // tanh keeps the sign of zero and of tiny inputs, as std::tanh
        float z[2] = {-0.0f, -1e-30f}, t[2];
        vector_math::tanh(z, t, 2);
        CHECK(std::signbit(t[0]));
        CHECK(t[1] == -1e-30f);
    });
}

TEST_CASE("vector math: the float32 ops use it and agree with their float64 versions") {
    Generator g(12);
    const Tensor x = g.normal({7, 45}, 0, 4, float64);
    const Variable x32(x.to(float32)), x64(x);
    for (auto [name, op] :
         {std::pair<const char*, Variable (*)(const Variable&, const Loc&)>{"exp", exp},
          {"sigmoid", sigmoid},
          {"tanh", tanh}}) {
        CAPTURE(name);
        const Tensor a = op(x32, Loc::current()).value().to(float64),
                     b = op(x64, Loc::current()).value();
        double worst = 0;
        for (std::size_t i = 0; i < a.numel(); ++i)
            worst =
                std::max(worst, std::abs(a.flat(i) - b.flat(i)) / (std::abs(b.flat(i)) + 1e-30));
        CHECK(worst < 1e-6);
    }
    // switched off, the float32 ops take xtensor's path: same values to float32 rounding
    const Tensor fast = tanh(x32).value();
    vector_math::set_enabled(false);
    CHECK_FALSE(vector_math::available());
    const Tensor plain = tanh(x32).value();
    // sigmoid follows e^x into the subnormals on xtensor's path too, in float32 and float64
    const Tensor deep32 = sigmoid(Variable(Tensor::from({-95.0, -20.0}, {2}, float32))).value();
    const Variable x64_deep(Tensor::from({-730.0, -20.0}, {2}, float64));
    const Tensor deep64 = sigmoid(x64_deep).value();
    vector_math::set_enabled(true);
    CHECK(max_abs_diff(fast, plain) < 1e-6);
    CHECK(deep32.flat(0) == doctest::Approx(std::exp(-95.0)).scale(0).epsilon(1e-3));
    // e^x / (1 + e^x) is e^x there, as exp gives it: a subnormal on x86-64, 0 where xsimd's
    // float64 exp flushes (aarch64), never 0 from an overflowed e^-x
    CHECK(deep64.flat(0) == exp(x64_deep).value().flat(0));
    CHECK(deep32.flat(1) == doctest::Approx(1 / (1 + std::exp(20.0))).scale(0).epsilon(1e-6));
}

TEST_CASE("vector math: isa() honours the cap, and the cap at generic turns the kernels off") {
    RestoreCap restore;
#if defined(__x86_64__)
    __builtin_cpu_init();
    const Isa expected = __builtin_cpu_supports("avx512f") ? Isa::avx512
                         : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
                             ? Isa::avx2
                             : Isa::generic;
    CHECK(cpu_isa() == expected);
    // a cap from the other family is generic here
    set_isa_cap(Isa::neon);
    CHECK(isa() == Isa::generic);
#elif defined(__aarch64__)
    CHECK(cpu_isa() == Isa::neon);
    // the x86-64 caps leave NEON on
    for (Isa cap : {Isa::neon, Isa::avx2, Isa::avx512}) {
        set_isa_cap(cap);
        CHECK(isa() == Isa::neon);
    }
#endif
    if (cpu_isa() != Isa::neon)
        for (Isa cap : {Isa::generic, Isa::avx2, Isa::avx512}) {
            set_isa_cap(cap);
            CHECK(isa() == std::min(cap, cpu_isa()));
        }
    set_isa_cap(Isa::generic);
    CHECK(isa() == Isa::generic);
    CHECK_FALSE(vector_math::available());
    CHECK_FALSE(packed_gemm::available());
    // both run on every SIMD path: AVX2 (the cap's lowest) and NEON
    set_isa_cap(Isa::avx2);
    const bool simd = cpu_isa() != Isa::generic;
    CHECK(packed_gemm::available() == (simd && switches().packed_gemm));
    CHECK(vector_math::available() == (simd && switches().vector_math));
    CHECK(std::string(isa_name(Isa::generic)) == "generic");
    CHECK(std::string(isa_name(Isa::neon)) == "neon");
    CHECK(std::string(isa_name(Isa::avx2)) == "avx2");
    CHECK(std::string(isa_name(Isa::avx512)) == "avx512");
}

// Run by the next case in a child process, with TAPEGRAD_ISA set and the cap it should give in
// TAPEGRAD_TEST_ISA_CAP; nothing to check otherwise.
TEST_CASE("vector math: TAPEGRAD_ISA as read at start (child process)") {
    const char* want = std::getenv("TAPEGRAD_TEST_ISA_CAP");
    if (!want) return;
    CHECK(std::string(isa_name(switches().isa_cap)) == want);
}

TEST_CASE("vector math: TAPEGRAD_ISA sets the cap; another value is reported and ignored") {
    const std::string self = std::filesystem::read_symlink("/proc/self/exe").string(),
                      err = (std::filesystem::temp_directory_path() /
                             ("tapegrad_isa_" + std::to_string(getpid()) + ".err"))
                                .string();
    for (auto [value, cap] : {std::pair<const char*, const char*>{"avx2", "avx2"},
                              {"generic", "generic"},
                              {"avx512", "avx512"},
                              {"neon", "neon"},
                              {"sse2", "avx512"}}) {
        CAPTURE(value);
        // cross-compiled, ctest runs this binary under an emulator: the child too
        const char* emulator = std::getenv("TAPEGRAD_TEST_EMULATOR");
        const std::string cmd = std::string("TAPEGRAD_ISA=") + value +
                                " TAPEGRAD_TEST_ISA_CAP=" + cap + " " + (emulator ? emulator : "") +
                                " '" + self +
                                "' '--test-case=vector math: TAPEGRAD_ISA as read at start "
                                "(child process)' > /dev/null 2> '" +
                                err + "'";
        CHECK(std::system(cmd.c_str()) == 0);
        std::ifstream in(err);
        const std::string text{std::istreambuf_iterator<char>(in), {}};
        const bool reported = text.find("TAPEGRAD_ISA='sse2'") != std::string::npos &&
                              text.find("avx512, avx2, neon or generic") != std::string::npos;
        CHECK(reported == (std::string(value) == "sse2"));
    }
    std::remove(err.c_str());
}
