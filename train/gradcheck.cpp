#include "train/gradcheck.hpp"

#include <algorithm>
#include <cmath>

#include "core/random.hpp"
#include "core/tape.hpp"
#include "ops/arith.hpp"
#include "ops/reduce.hpp"

namespace tapegrad {

namespace {

std::string index_string(const Shape& shape, std::size_t flat) {
    Shape idx(shape.size());
    for (std::size_t d = shape.size(); d-- > 0;) {
        idx[d] = flat % shape[d];
        flat /= shape[d];
    }
    return to_string(idx);
}

struct Comparison {
    const GradcheckOptions& opt;
    GradcheckInput& row;
    double worst_ratio = -1;
    void operator()(double analytic, double numeric, const std::string& index) {
        const double err = std::abs(analytic - numeric);
        row.max_abs_error = std::max(row.max_abs_error, err);
        row.max_rel_error = std::max(row.max_rel_error, err / std::max(std::abs(numeric), 1e-300));
        const double ratio = err / (opt.atol + opt.rtol * std::abs(numeric));
        if (!(ratio <= 1.0)) row.ok = false;  // NaN fails too
        if (ratio > worst_ratio || std::isnan(ratio)) {
            worst_ratio = std::isnan(ratio) ? INFINITY : ratio;
            row.worst_index = index;
            row.analytic = analytic;
            row.numeric = numeric;
        }
    }
};

}  // namespace

bool GradcheckReport::ok() const {
    for (const auto& in : inputs)
        if (!in.ok) return false;
    return true;
}

double GradcheckReport::max_abs_error() const {
    double m = 0;
    for (const auto& in : inputs) m = std::max(m, in.max_abs_error);
    return m;
}

double GradcheckReport::max_rel_error() const {
    double m = 0;
    for (const auto& in : inputs) m = std::max(m, in.max_rel_error);
    return m;
}

const GradcheckInput* GradcheckReport::worst() const {
    const GradcheckInput* worst = nullptr;
    double worst_ratio = -1;
    for (const auto& in : inputs) {
        if (!in.checked) continue;
        const double ratio = std::abs(in.analytic - in.numeric) /
                             (options.atol + options.rtol * std::abs(in.numeric));
        // a NaN error is the worst of all
        if (!worst || std::isnan(ratio) || (!std::isnan(worst_ratio) && ratio > worst_ratio)) {
            worst = &in;
            worst_ratio = ratio;
        }
    }
    return worst;
}

std::string GradcheckReport::str() const {
    std::string s =
        fmt::format("gradcheck {}: {} (eps={:g}, atol={:g}, rtol={:g})", ok() ? "passed" : "FAILED",
                    mode, options.eps, options.atol, options.rtol);
    if (const GradcheckInput* w = worst(); w && !w->worst_index.empty())
        s += fmt::format("; worst: {} at {}", w->name, w->worst_index);
    for (const auto& in : inputs) {
        if (!in.checked) {
            s += fmt::format("\n  {} {}: not checked (does not require grad)", in.name,
                             to_string(in.shape));
            continue;
        }
        s += fmt::format("\n  {} {}: {} max abs error {:.3g}, max rel error {:.3g}", in.name,
                         to_string(in.shape), in.ok ? "ok   " : "WRONG", in.max_abs_error,
                         in.max_rel_error);
        if (!in.worst_index.empty())
            s += fmt::format("; worst at {}: analytic {:.10g}, numeric {:.10g}", in.worst_index,
                             in.analytic, in.numeric);
    }
    return s;
}

namespace {
// Checks d eval() / d leaf for every leaf: analytic through grad(), numeric by moving each
// element of the leaf's value in place by +-eps. Leaves are float64 leaf variables.
void check_leaves(const std::function<Variable()>& eval, const std::vector<Variable>& leaves,
                  const std::vector<std::size_t>& rows, GradcheckReport& report) {
    const GradcheckOptions& opt = report.options;
    const Variable y0 = eval();
    if (!y0.defined() || y0.dtype() != float64)
        throw DTypeError(
            "gradcheck: the function must return a defined float64 variable for "
            "float64 inputs");
    const std::size_t m = y0.numel();

    // Output weightings to check: one-hot rows (Jacobian) or random projections.
    std::vector<Tensor> seeds;
    if (m == 1) {
        report.mode = "scalar output";
        seeds.push_back(Tensor::ones(y0.shape(), float64));
    } else if (m <= opt.full_jacobian_max_outputs) {
        report.mode = fmt::format("full Jacobian ({} outputs)", m);
        for (std::size_t j = 0; j < m; ++j) {
            Tensor e = Tensor::zeros(y0.shape(), float64);
            e.set_flat(j, 1.0);
            seeds.push_back(e);
        }
    } else {
        report.mode = fmt::format("{} random projections of {} outputs", opt.projections, m);
        Generator gen(opt.seed);
        for (std::size_t p = 0; p < opt.projections; ++p)
            seeds.push_back(gen.normal(y0.shape(), 0.0, 1.0, float64));
    }

    // Analytic: one backward per seed, each over a fresh forward.
    std::vector<std::vector<Tensor>> analytic(seeds.size());
    for (std::size_t s = 0; s < seeds.size(); ++s) {
        Variable y = s == 0 ? y0 : eval();
        std::vector<Variable> g(leaves.size());
        if (!leaves.empty() && y.requires_grad()) g = grad(y, leaves, seeds[s]);
        for (std::size_t k = 0; k < leaves.size(); ++k)
            analytic[s].push_back(g[k].defined() ? g[k].value()
                                                 : Tensor::zeros(leaves[k].shape(), float64));
    }

    // Numeric: central differences, two forwards per element shared by all seeds.
    for (std::size_t k = 0; k < leaves.size(); ++k) {
        Variable leaf = leaves[k];
        Comparison compare{opt, report.inputs[rows[k]]};
        for (std::size_t i = 0, n = leaf.numel(); i < n; ++i) {
            const double original = leaf.value().flat(i);
            auto shifted = [&](double delta) {
                leaf.mutable_value().set_flat(i, original + delta);
                NoGradGuard no_grad;
                Tensor out = eval().value();
                leaf.mutable_value().set_flat(i, original);
                return out;
            };
            const Tensor plus = shifted(+opt.eps), minus = shifted(-opt.eps);
            for (std::size_t s = 0; s < seeds.size(); ++s) {
                double dp = 0;
                for (std::size_t j = 0; j < m; ++j)
                    dp += seeds[s].flat(j) * (plus.flat(j) - minus.flat(j));
                std::string at = index_string(leaf.shape(), i);
                if (m > 1)
                    at += fmt::format(" ({} {})",
                                      m <= opt.full_jacobian_max_outputs ? "output" : "projection",
                                      s);
                compare(analytic[s][k].flat(i), dp / (2 * opt.eps), at);
            }
        }
    }
}

void require_float64_leaves(const std::vector<Variable>& params) {
    for (const auto& p : params)
        if (!p.is_leaf() || p.dtype() != float64 || !p.requires_grad())
            throw DTypeError(
                fmt::format("gradcheck: parameter '{}' must be a float64 leaf that requires "
                            "grad (convert the module with to(float64))",
                            p.name()));
}
}  // namespace

GradcheckReport gradcheck(const GradcheckFn& f, const std::vector<Variable>& inputs_in,
                          const GradcheckOptions& opt, const std::vector<Variable>& params) {
    require_float64_leaves(params);
    // Work on float64 copies, on a private tape, so the caller's tape is untouched.
    Tape tape;
    TapeScope scope(tape);
    GradModeGuard recording(true);
    GradcheckReport report;
    report.options = opt;
    std::vector<Variable> x, leaves;
    std::vector<std::size_t> rows;
    for (std::size_t k = 0; k < inputs_in.size(); ++k) {
        const auto& in = inputs_in[k];
        x.emplace_back(in.value().to(float64).clone(), in.requires_grad());
        GradcheckInput row;
        row.input = k;
        row.name = fmt::format("input {}", k);
        row.shape = in.shape();
        row.checked = in.requires_grad();
        report.inputs.push_back(row);
        if (in.requires_grad()) {
            leaves.push_back(x.back());
            rows.push_back(k);
        }
    }
    for (std::size_t k = 0; k < params.size(); ++k) {
        GradcheckInput row;
        row.input = inputs_in.size() + k;
        row.name = params[k].name().empty() ? fmt::format("parameter {}", k) : params[k].name();
        row.shape = params[k].shape();
        row.checked = true;
        report.inputs.push_back(row);
        leaves.push_back(params[k]);
        rows.push_back(inputs_in.size() + k);
    }
    check_leaves([&] { return f(x); }, leaves, rows, report);
    return report;
}

GradcheckReport gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options, const std::vector<Variable>& params) {
    std::vector<Variable> vars;
    for (const auto& t : inputs) vars.emplace_back(t, true);
    return gradcheck(f, vars, options, params);
}

GradcheckReport gradgradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                              const GradcheckOptions& options,
                              const std::vector<Variable>& params) {
    // Fixed random weightings, drawn once so every evaluation sees the same function.
    Generator gen(options.seed + 1);
    std::vector<Tensor> v;
    for (const auto& t : inputs) v.push_back(gen.normal(t.shape(), 0, 1, float64));
    for (const auto& p : params) v.push_back(gen.normal(p.shape(), 0, 1, float64));
    Tensor u;
    auto s = [&](const std::vector<Variable>& x) -> Variable {
        // The inner gradient is needed for the finite differences too (which run without
        // recording); it is itself recorded only when the outer check differentiates it.
        const bool outer = grad_enabled();
        GradModeGuard on(true);
        Variable y = f(x);
        if (!u.defined()) u = gen.normal(y.shape(), 0, 1, float64);
        Variable yu = sum(y * Variable(u));
        Variable total = constant(0.0, float64);
        if (!yu.requires_grad()) return total;
        std::vector<Variable> wrt = x;
        wrt.insert(wrt.end(), params.begin(), params.end());
        const auto g = grad(yu, wrt, {}, {.retain_graph = false, .create_graph = outer});
        GradModeGuard inner(outer);
        for (std::size_t k = 0; k < wrt.size(); ++k)
            if (g[k].defined()) total = total + sum(g[k] * Variable(v[k]));
        return total;
    };
    return gradcheck(s, inputs, options, params);
}

}  // namespace tapegrad
