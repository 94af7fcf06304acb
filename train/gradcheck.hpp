// gradcheck: compares the engine's gradients with central finite differences in float64.
//
//   auto report = gradcheck([](const std::vector<Variable>& x) { return sum(tanh(x[0])); },
//                           {Tensor::from({0.1, 0.2}, {2}, float64)});
//   if (!report.ok()) fmt::print("{}\n", report);
//
// Inputs of float32 are checked on a float64 copy. A scalar output is checked with one
// backward; a non-scalar one through its full Jacobian when small, else through several
// random projections vᵀJ.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/variable.hpp"

namespace tapegrad {

using GradcheckFn = std::function<Variable(const std::vector<Variable>&)>;

struct GradcheckOptions {
    double eps = 1e-6;   // finite-difference step
    double atol = 1e-5;  // an element passes when |analytic - numeric| <= atol + rtol |numeric|
    double rtol = 1e-3;
    std::size_t full_jacobian_max_outputs = 64;  // larger outputs use random projections
    std::size_t projections = 3;
    std::uint64_t seed = 0;  // for the projections
};

struct GradcheckInput {
    std::size_t input = 0;
    std::string name;  // "input 0", or a parameter's name
    Shape shape;
    bool checked = false;  // false for inputs that do not require grad
    double max_abs_error = 0;
    double max_rel_error = 0;
    std::string worst_index;  // e.g. "[1,0]", with the output row in Jacobian mode
    double analytic = 0;      // at the worst element
    double numeric = 0;
    bool ok = true;
};

struct GradcheckReport {
    std::string mode;  // "scalar output", "full Jacobian (6 outputs)", "3 random projections"
    GradcheckOptions options;
    std::vector<GradcheckInput> inputs;
    bool ok() const;
    // Over every checked input: the largest errors, and the input whose worst element is
    // furthest past its tolerance (or nearest to it, when all pass), measured as
    // |analytic - numeric| / (atol + rtol |numeric|); nullptr when no input was checked.
    double max_abs_error() const;
    double max_rel_error() const;
    const GradcheckInput* worst() const;
    std::string str() const;
};

// Checks every input. `params` are extra float64 leaves f uses directly (a module's
// parameters): they are checked too, moved in place for the finite differences and restored.
// layers/module.hpp has gradcheck(module, f, inputs), which converts a module for you.
GradcheckReport gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {},
                          const std::vector<Variable>& params = {});
// Checks the inputs that require grad; the others are passed through as constants.
GradcheckReport gradcheck(const GradcheckFn& f, const std::vector<Variable>& inputs,
                          const GradcheckOptions& options = {},
                          const std::vector<Variable>& params = {});

// Second derivatives: checks the gradient of  s(x) = Σ_i <v_i, ∂<u, f(x)>/∂x_i>  for random
// u, v, where the inner gradient is taken with create_graph. Passes when every op on the path
// has a differentiable backward rule.
GradcheckReport gradgradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                              const GradcheckOptions& options = {},
                              const std::vector<Variable>& params = {});

}  // namespace tapegrad

template <>
struct fmt::formatter<tapegrad::GradcheckReport> : fmt::formatter<std::string> {
    auto format(const tapegrad::GradcheckReport& r, format_context& ctx) const {
        return fmt::formatter<std::string>::format(r.str(), ctx);
    }
};

template <>
struct fmt::formatter<tapegrad::Tensor> : fmt::formatter<std::string> {
    auto format(const tapegrad::Tensor& t, format_context& ctx) const {
        return fmt::formatter<std::string>::format(t.str(), ctx);
    }
};
