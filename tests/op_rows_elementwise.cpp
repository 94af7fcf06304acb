// Gradcheck rows for more elementwise ops: pow, sqrt, abs, log1p, leaky_relu, softplus, silu,
// gelu, clamp, maximum, minimum, where, lerp. Inputs come from Domain::any (|x| >= 0.1, off the
// kinks at 0) or Domain::positive; bounds and thresholds are chosen so random inputs fall on both
// sides ("wide range" rows scale them to [-8, 8], the activations' tails).
// Piecewise-linear ops have second derivative 0 away from their kinks, so every row also runs
// gradgradcheck.
#include "op_table.hpp"

namespace tapegrad::testing {

namespace {
using V = const std::vector<Variable>&;

// 1, 0, 1 / 0, 1, 0 ... as a mask of `shape`.
Tensor alternating(const Shape& shape) {
    Tensor m = Tensor::empty(shape, float64);
    for (std::size_t i = 0; i < m.numel(); ++i) m.set_flat(i, i % 2 == 0 ? 1.0 : 0.0);
    return m;
}
}  // namespace

std::vector<OpRow> rows_elementwise() {
    return {
        {"pow variable exponent",
         {{2, 3}, {2, 3}},
         [](V x) { return pow(x[0], x[1]); },
         Domain::positive},
        {"pow exponent broadcast",
         {{2, 3}, {3}},
         [](V x) { return pow(x[0], x[1]); },
         Domain::positive},
        {"pow base broadcast",
         {{3}, {2, 3}},
         [](V x) { return pow(x[0], x[1]); },
         Domain::positive},
        {"pow broadcast long rows",
         {{2, 1, 17}, {3, 1}},
         [](V x) { return pow(x[0], x[1]); },
         Domain::positive},
        {"pow 2", {{2, 3}}, [](V x) { return pow(x[0], 2.0); }},
        {"pow 3", {{2, 3}}, [](V x) { return pow(x[0], 3.0); }},
        {"pow 4 (general path, negative base)", {{2, 3}}, [](V x) { return pow(x[0], 4.0); }},
        {"pow 0.5", {{2, 3}}, [](V x) { return pow(x[0], 0.5); }, Domain::positive},
        {"pow -1", {{2, 3}}, [](V x) { return pow(x[0], -1.0); }},
        {"pow 2.5", {{2, 3}}, [](V x) { return pow(x[0], 2.5); }, Domain::positive},
        {"pow -1.5", {{2, 3}}, [](V x) { return pow(x[0], -1.5); }, Domain::positive},
        {"sqrt", {{2, 3}}, [](V x) { return sqrt(x[0]); }, Domain::positive},
        {"abs", {{2, 3}}, [](V x) { return abs(x[0]); }},
        {"log1p", {{2, 3}}, [](V x) { return log1p(x[0]); }, Domain::positive},
        {"log1p near -1", {{2, 3}}, [](V x) { return log1p(x[0] * 0.4); }},
        {"leaky_relu", {{2, 3}}, [](V x) { return leaky_relu(x[0]); }},
        {"leaky_relu slope 0.2", {{2, 3}}, [](V x) { return leaky_relu(x[0], 0.2); }},
        {"softplus", {{2, 3}}, [](V x) { return softplus(x[0]); }},
        {"softplus beta 2 threshold 1 (linear part hit)",
         {{3, 4}},
         [](V x) { return softplus(x[0], 2.0, 1.0); }},
        {"silu", {{3, 4}}, [](V x) { return silu(x[0]); }},
        {"silu wide range", {{3, 4}}, [](V x) { return silu(x[0] * 4.0); }},
        {"gelu", {{3, 4}}, [](V x) { return gelu(x[0]); }},
        {"gelu wide range", {{3, 4}}, [](V x) { return gelu(x[0] * 4.0); }},
        {"gelu tanh", {{3, 4}}, [](V x) { return gelu(x[0], true); }},
        {"gelu tanh wide range", {{3, 4}}, [](V x) { return gelu(x[0] * 4.0, true); }},
        {"clamp", {{3, 4}}, [](V x) { return clamp(x[0], -1.0, 1.0); }},
        {"clamp min only", {{3, 4}}, [](V x) { return clamp(x[0], 0.5, std::nullopt); }},
        {"clamp max only", {{3, 4}}, [](V x) { return clamp(x[0], std::nullopt, -0.5); }},
        {"maximum", {{2, 3}, {2, 3}}, [](V x) { return maximum(x[0], x[1]); }},
        {"maximum broadcast", {{2, 3}, {3}}, [](V x) { return maximum(x[0], x[1]); }},
        {"maximum with a scalar",
         {{2, 3}},
         [](V x) { return maximum(x[0], constant(0.3, x[0].dtype())); }},
        {"maximum broadcast long rows", {{3, 20}, {3, 1}}, [](V x) { return maximum(x[0], x[1]); }},
        {"minimum", {{2, 3}, {2, 3}}, [](V x) { return minimum(x[0], x[1]); }},
        {"minimum broadcast long rows",
         {{3, 1}, {2, 1, 17}},
         [](V x) { return minimum(x[0], x[1]); }},
        {"minimum broadcast", {{2, 1}, {1, 3}}, [](V x) { return minimum(x[0], x[1]); }},
        {"where",
         {{2, 3}, {2, 3}},
         [](V x) {
             return where(alternating({2, 3}), x[0], x[1]);
         }},
        {"where broadcast",
         {{2, 3}, {3}},
         [](V x) {
             return where(alternating({2, 1}), x[0], x[1]);
         }},
        {"where row mask",  // one mask value per row: rows are copied whole
         {{3, 4}, {3, 4}},
         [](V x) {
             return where(alternating({3, 1}), x[0], x[1]);
         }},
        {"where row mask, one-element b",
         {{2, 3, 4}, {1}},
         [](V x) {
             return where(alternating({2, 3, 1}), x[0], x[1]);
         }},
        {"where float32 mask",
         {{4}, {4}},
         [](V x) { return where(alternating({4}).to(float32), x[0] * x[1], x[1]); }},
        {"lerp", {{2, 3}, {2, 3}, {2, 3}}, [](V x) { return lerp(x[0], x[1], x[2]); }},
        {"lerp broadcast", {{2, 3}, {3}, {2, 1}}, [](V x) { return lerp(x[0], x[1], x[2]); }},
        {"lerp constant weight",
         {{2, 3}, {2, 3}},
         [](V x) { return lerp(x[0], x[1], constant(0.3, x[0].dtype())); }},
        // start and weight are column slices (strided runs read in place), end is contiguous
        {"lerp on column slices",
         {{3, 8}, {3, 4}},
         [](V x) {
             const auto c = chunk(x[0], 2, 1);
             return lerp(c[0], x[1], c[1]);
         }},
    };
}

}  // namespace tapegrad::testing
