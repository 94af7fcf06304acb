#include "core/gradcheck.hpp"

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

// Evaluates f on copies of `x` with element (k, i) moved by `delta`, without recording.
Tensor evaluate_shifted(const GradcheckFn& f, const std::vector<Variable>& x, std::size_t k,
                        std::size_t i, double delta) {
    std::vector<Variable> shifted = x;
    Tensor moved = x[k].value().clone();
    moved.set_flat(i, moved.flat(i) + delta);
    shifted[k] = Variable(moved, x[k].requires_grad());
    NoGradGuard no_grad;
    return f(shifted).value();
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

std::string GradcheckReport::str() const {
    std::string s = fmt::format("gradcheck {}: {} (eps={:g}, atol={:g}, rtol={:g})",
                                ok() ? "passed" : "FAILED", mode, options.eps, options.atol,
                                options.rtol);
    for (const auto& in : inputs) {
        if (!in.checked) {
            s += fmt::format("\n  input {} {}: not checked (does not require grad)", in.input,
                             to_string(in.shape));
            continue;
        }
        s += fmt::format("\n  input {} {}: {} max abs error {:.3g}, max rel error {:.3g}",
                         in.input, to_string(in.shape), in.ok ? "ok   " : "WRONG", in.max_abs_error,
                         in.max_rel_error);
        if (!in.worst_index.empty())
            s += fmt::format("; worst at {}: analytic {:.10g}, numeric {:.10g}", in.worst_index,
                             in.analytic, in.numeric);
    }
    return s;
}

GradcheckReport gradcheck(const GradcheckFn& f, const std::vector<Variable>& inputs_in,
                          const GradcheckOptions& opt) {
    // Work on float64 copies, on a private tape, so the caller's tape is untouched.
    Tape tape;
    TapeScope scope(tape);
    GradModeGuard recording(true);
    std::vector<Variable> x;
    std::vector<Variable> checked;
    for (const auto& in : inputs_in) {
        x.emplace_back(in.value().to(float64).clone(), in.requires_grad());
        if (in.requires_grad()) checked.push_back(x.back());
    }

    GradcheckReport report;
    report.options = opt;
    for (std::size_t k = 0; k < x.size(); ++k) {
        GradcheckInput row;
        row.input = k;
        row.shape = x[k].shape();
        row.checked = x[k].requires_grad();
        report.inputs.push_back(row);
    }

    const Variable y0 = f(x);
    if (!y0.defined() || y0.dtype() != float64)
        throw DTypeError("gradcheck: the function must return a defined float64 variable for "
                         "float64 inputs");
    const std::size_t m = y0.numel();

    // Output weightings to check: one-hot rows (Jacobian) or random projections.
    std::vector<Tensor> seeds;
    std::vector<std::size_t> seed_row;  // the output element for one-hot seeds
    if (m == 1) {
        report.mode = "scalar output";
        seeds.push_back(Tensor::ones(y0.shape(), float64));
        seed_row.push_back(0);
    } else if (m <= opt.full_jacobian_max_outputs) {
        report.mode = fmt::format("full Jacobian ({} outputs)", m);
        for (std::size_t j = 0; j < m; ++j) {
            Tensor e = Tensor::zeros(y0.shape(), float64);
            e.set_flat(j, 1.0);
            seeds.push_back(e);
            seed_row.push_back(j);
        }
    } else {
        report.mode = fmt::format("{} random projections of {} outputs", opt.projections, m);
        Generator gen(opt.seed);
        for (std::size_t p = 0; p < opt.projections; ++p) {
            seeds.push_back(gen.normal(y0.shape(), 0.0, 1.0, float64));
            seed_row.push_back(p);
        }
    }

    // Analytic: one backward per seed, each over a fresh forward.
    std::vector<std::vector<Tensor>> analytic(seeds.size());
    for (std::size_t s = 0; s < seeds.size(); ++s) {
        Variable y = s == 0 ? y0 : f(x);
        std::vector<Variable> g;
        if (!checked.empty()) {
            if (!y.requires_grad())
                g.assign(checked.size(), Variable());  // nothing depends on the inputs
            else
                g = grad(y, checked, seeds[s]);
        }
        std::size_t c = 0;
        for (std::size_t k = 0; k < x.size(); ++k) {
            if (!x[k].requires_grad()) {
                analytic[s].emplace_back();
                continue;
            }
            const Variable& gk = g[c++];
            analytic[s].push_back(gk.defined() ? gk.value() : Tensor::zeros(x[k].shape(), float64));
        }
    }

    // Numeric: central differences, two forwards per input element shared by all seeds.
    for (std::size_t k = 0; k < x.size(); ++k) {
        if (!x[k].requires_grad()) continue;
        Comparison compare{opt, report.inputs[k]};
        for (std::size_t i = 0, n = x[k].numel(); i < n; ++i) {
            const Tensor plus = evaluate_shifted(f, x, k, i, +opt.eps);
            const Tensor minus = evaluate_shifted(f, x, k, i, -opt.eps);
            for (std::size_t s = 0; s < seeds.size(); ++s) {
                double dp = 0;
                for (std::size_t j = 0; j < m; ++j)
                    dp += seeds[s].flat(j) * (plus.flat(j) - minus.flat(j));
                const double numeric = dp / (2 * opt.eps);
                std::string where = index_string(x[k].shape(), i);
                if (m > 1)
                    where += fmt::format(" ({} {})",
                                         m <= opt.full_jacobian_max_outputs ? "output" : "projection",
                                         seed_row[s]);
                compare(analytic[s][k].flat(i), numeric, where);
            }
        }
    }
    return report;
}

GradcheckReport gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options) {
    std::vector<Variable> vars;
    for (const auto& t : inputs) vars.emplace_back(t, true);
    return gradcheck(f, vars, options);
}

GradcheckReport gradgradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                              const GradcheckOptions& options) {
    // Fixed random weightings, drawn once so every evaluation sees the same function.
    Generator gen(options.seed + 1);
    std::vector<Tensor> v;
    for (const auto& t : inputs) v.push_back(gen.normal(t.shape(), 0, 1, float64));
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
        const auto g = grad(yu, x, {}, {.retain_graph = false, .create_graph = outer});
        GradModeGuard inner(outer);
        for (std::size_t k = 0; k < x.size(); ++k)
            if (g[k].defined()) total = total + sum(g[k] * Variable(v[k]));
        return total;
    };
    return gradcheck(s, inputs, options);
}

}  // namespace tapegrad
