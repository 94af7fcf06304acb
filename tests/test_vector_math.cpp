// The AVX-512 exp, sigmoid and tanh (kernels/vector_math.hpp) behind the float32 forward of the
// exp, sigmoid and tanh ops: within a few ulps of a double-precision reference over their whole
// range, and the special values (NaN, ±inf, ±0, overflow, underflow) as std:: gives them.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

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

}  // namespace

TEST_CASE("vector math: exp, sigmoid and tanh stay within a few ulps everywhere") {
    if (!vector_math::available()) {
        MESSAGE("no AVX-512F here (or TAPEGRAD_VECTOR_MATH=0): xtensor's versions are used");
        return;
    }
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
    for (const Case& c : cases) {
        CAPTURE(c.name);
        c.fast(x.data(), y.data(), x.size());
        double worst = 0;
        float worst_at = 0;
        for (std::size_t i = 0; i < x.size(); ++i) {
            const double want = c.exact(x[i]);
            // below the normal range only the absolute error means anything
            if (std::abs(want) < std::numeric_limits<float>::min()) {
                CHECK(std::abs(y[i] - want) <= std::numeric_limits<float>::min());
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
    }
}

TEST_CASE("vector math: special values and lengths that are not a multiple of 16") {
    if (!vector_math::available()) return;
    const float inf = std::numeric_limits<float>::infinity(),
                nan = std::numeric_limits<float>::quiet_NaN();
    const std::vector<float> x{nan,     inf,    -inf,   0.0f,    -0.0f, 89.0f, 88.0f,
                               -104.0f, -87.5f, 1e-30f, -1e-30f, 20.0f, -20.0f};
    for (const Case& c : cases) {
        CAPTURE(c.name);
        // every length from 1 to 13 with a 1-element offset: the masked tail and unaligned starts
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
    vector_math::set_enabled(true);
    CHECK(max_abs_diff(fast, plain) < 1e-6);
}
