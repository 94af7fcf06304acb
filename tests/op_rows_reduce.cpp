// Gradcheck rows for the reductions: sum, mean, max, min, argmax, argmin (and the accuracy
// metric built on argmax), logsumexp, var, and the running ones, cumsum and logcumsumexp. Random inputs have no
// ties, so max/min are smooth there (second derivative 0).
#include "op_table.hpp"

namespace tapegrad::testing {

namespace {
using V = const std::vector<Variable>&;
}

std::vector<OpRow> rows_reduce() {
    return {
        {"sum all", {{2, 3}}, [](V x) { return sum(x[0]); }},
        {"sum axis", {{2, 3, 4}}, [](V x) { return sum(x[0], {1}); }},
        {"sum axes keepdims",
         {{2, 3, 4}},
         [](V x) {
             return sum(x[0], {0, -1}, true);
         }},
        {"mean all", {{2, 3}}, [](V x) { return mean(x[0]); }},
        {"mean axis", {{2, 3}}, [](V x) { return mean(x[0], {0}); }},
        {"max all", {{2, 3}}, [](V x) { return max(x[0]); }},
        {"max axis", {{2, 3, 4}}, [](V x) { return max(x[0], {1}); }},
        {"max axes keepdims",
         {{2, 3, 4}},
         [](V x) {
             return max(x[0], {0, -1}, true);
         }},
        {"max last axis", {{3, 20}}, [](V x) { return max(x[0], {-1}); }},
        {"min all", {{2, 3}}, [](V x) { return min(x[0]); }},
        {"min axis", {{2, 3, 4}}, [](V x) { return min(x[0], {0}); }},
        {"min last axis keepdims", {{3, 20}}, [](V x) { return min(x[0], {1}, true); }},
        // argmax, argmin, accuracy: constants (no gradient), here as factors of x
        {"argmax as a constant factor",
         {{3, 4}},
         [](V x) { return x[0] * unsqueeze(argmax(x[0], 1), 1); }},
        {"argmin negative axis keepdims as a constant factor",
         {{3, 4, 2}},
         [](V x) { return x[0] * argmin(x[0], -2, true); }},
        {"accuracy as a constant weight",
         {{4, 3}},
         [](V x) {
             return x[0] * (accuracy(x[0], {0, 2, 1, 0}) + 1.0);
         }},
        {"accuracy of argmax labels (1)",
         {{2, 3, 5}},
         [](V x) { return x[0] * accuracy(x[0], argmax(x[0], -1)); }},
        {"logsumexp all", {{2, 3}}, [](V x) { return logsumexp(x[0]); }},
        {"logsumexp axis", {{2, 3, 4}}, [](V x) { return logsumexp(x[0], {1}); }},
        {"logsumexp last axis", {{3, 20}}, [](V x) { return logsumexp(x[0], {-1}); }},
        {"logsumexp axes keepdims",
         {{2, 3, 4}},
         [](V x) {
             return logsumexp(x[0], {0, 2}, true);
         }},
        {"cumsum axis 0", {{3, 4}}, [](V x) { return cumsum(x[0], 0); }},
        {"cumsum last axis", {{2, 3, 4}}, [](V x) { return cumsum(x[0], -1); }},
        {"cumsum reverse", {{2, 5, 3}}, [](V x) { return cumsum(x[0], 1, true); }},
        {"logcumsumexp axis 0", {{4, 3}}, [](V x) { return logcumsumexp(x[0], 0); }},
        {"logcumsumexp last axis", {{2, 3, 5}}, [](V x) { return logcumsumexp(x[0], -1); }},
        {"logcumsumexp middle axis", {{2, 4, 3}}, [](V x) { return logcumsumexp(x[0], 1); }},
        {"var all", {{2, 3}}, [](V x) { return var(x[0]); }},
        {"var axis", {{2, 3, 4}}, [](V x) { return var(x[0], {1}); }},
        {"var last axis", {{3, 20}}, [](V x) { return var(x[0], {-1}); }},
        {"var axes keepdims population",
         {{2, 3, 4}},
         [](V x) {
             return var(x[0], {0, -1}, 0, true);
         }},
        // layer normalisation, composed: (x - mean) / sqrt(var + eps)
        {"normalize",
         {{3, 5}},
         [](V x) { return (x[0] - mean(x[0], {1}, true)) / sqrt(var(x[0], {1}, 0, true) + 1e-5); }},
    };
}

}  // namespace tapegrad::testing
