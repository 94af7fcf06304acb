// bench/ops: forward + backward of each elementwise op and reduction on [64, 1024] float32
// tensors, one thread, beside the same op in PyTorch (bench/ops_torch.py) in the same run.
// Target (issue "Ops"): every op within 1.5x of PyTorch, or faster.
//
// A sample is `inner` forward+backward passes: y = op(inputs), y.backward(ones) (a scalar
// result: backward()), inputs requiring grad; the median over samples is reported in us per
// pass. The tapegrad samples are taken half before and half after the PyTorch child, so a
// slow phase of a shared machine weighs on both sides.
#include <cblas.h>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <tapegrad/tapegrad.hpp>

#include "common.hpp"

using namespace tapegrad;
namespace tb = tapegrad::bench;

namespace {

constexpr double target_ratio = 1.5;

struct Inputs {
    Variable x, y, bias, column;
    Tensor mask;
};

using OpFn = std::function<Variable(const Inputs&)>;

// The ops, by the names bench/ops_torch.py uses for the same computation.
const std::vector<std::pair<std::string, OpFn>>& ops() {
    static const std::vector<std::pair<std::string, OpFn>> list{
        {"add", [](const Inputs& i) { return i.x + i.y; }},
        {"add_bias_row", [](const Inputs& i) { return i.x + i.bias; }},
        {"sub", [](const Inputs& i) { return i.x - i.y; }},
        {"mul", [](const Inputs& i) { return i.x * i.y; }},
        {"mul_column", [](const Inputs& i) { return i.x * i.column; }},
        {"div", [](const Inputs& i) { return i.x / i.y; }},
        {"neg", [](const Inputs& i) { return -i.x; }},
        {"mul_scalar", [](const Inputs& i) { return i.x * 3.0; }},
        {"pow_scalar", [](const Inputs& i) { return pow(i.x, 2.5); }},
        {"pow_tensor", [](const Inputs& i) { return pow(i.x, i.y); }},
        {"sqrt", [](const Inputs& i) { return sqrt(i.x); }},
        {"abs", [](const Inputs& i) { return abs(i.x); }},
        {"exp", [](const Inputs& i) { return exp(i.x); }},
        {"log", [](const Inputs& i) { return log(i.x); }},
        {"log1p", [](const Inputs& i) { return log1p(i.x); }},
        {"tanh", [](const Inputs& i) { return tanh(i.x); }},
        {"sigmoid", [](const Inputs& i) { return sigmoid(i.x); }},
        {"relu", [](const Inputs& i) { return relu(i.x - 1.0); }},
        {"leaky_relu", [](const Inputs& i) { return leaky_relu(i.x, 0.01); }},
        {"softplus", [](const Inputs& i) { return softplus(i.x); }},
        {"clamp", [](const Inputs& i) { return clamp(i.x, 0.7, 1.3); }},
        {"maximum", [](const Inputs& i) { return maximum(i.x, i.y); }},
        {"minimum", [](const Inputs& i) { return minimum(i.x, i.y); }},
        {"where", [](const Inputs& i) { return where(i.mask, i.x, i.y); }},
        {"sum", [](const Inputs& i) { return sum(i.x); }},
        {"sum_rows", [](const Inputs& i) { return sum(i.x, {1}); }},
        {"sum_cols", [](const Inputs& i) { return sum(i.x, {0}); }},
        {"mean", [](const Inputs& i) { return mean(i.x); }},
        {"mean_rows", [](const Inputs& i) { return mean(i.x, {1}); }},
        {"max", [](const Inputs& i) { return max(i.x); }},
        {"max_rows", [](const Inputs& i) { return max(i.x, {1}); }},
        {"min_rows", [](const Inputs& i) { return min(i.x, {1}); }},
        {"logsumexp_rows", [](const Inputs& i) { return logsumexp(i.x, {1}); }},
        {"var", [](const Inputs& i) { return var(i.x); }},
        {"var_rows", [](const Inputs& i) { return var(i.x, {1}); }},
    };
    return list;
}

}  // namespace

int main(int argc, char** argv) {
    tune_malloc();
    CLI::App app{
        "tapegrad vs PyTorch: forward + backward of elementwise ops and reductions on [64, 1024]"};
    int samples = 21, inner = 20;
    bool no_torch = false;
    std::string out = tb::source_dir() + "/results.md";
    app.add_option("--samples", samples, "timed samples per op (median reported)");
    app.add_option("--inner", inner, "forward+backward passes per sample");
    app.add_flag("--no-torch", no_torch, "skip the PyTorch peer");
    app.add_option("--out", out, "Markdown file for the table");
    CLI11_PARSE(app, argc, argv);
    openblas_set_num_threads(1);
    warn_if_slow_blas();

    Generator gen(3);
    Inputs in;
    in.x = Variable(gen.uniform({64, 1024}, 0.5, 1.5, float32), true);
    in.y = Variable(gen.uniform({64, 1024}, 0.5, 1.5, float32), true);
    in.bias = Variable(gen.uniform({1024}, 0.5, 1.5, float32), true);
    in.column = Variable(gen.uniform({64, 1}, 0.5, 1.5, float32), true);
    in.mask = Tensor::empty({64, 1024}, float32);
    for (std::size_t k = 0; k < 64 * 1024; ++k)
        in.mask.set_flat(k, gen.uniform() < 0.5 ? 1.0 : 0.0);
    const Tensor ones = Tensor::ones({64, 1024}, float32);

    // us per forward+backward pass, per op
    auto time_tapegrad = [&](int n) {
        std::map<std::string, std::vector<double>> per_op;
        for (const auto& [name, f] : ops()) {
            auto pass = [&, &f = f] {
                for (int k = 0; k < inner; ++k) {
                    const Variable yv = f(in);
                    if (yv.numel() == 1) yv.backward();
                    else
                        yv.backward(yv.shape() == ones.shape() ? ones
                                                               : Tensor::ones(yv.shape(), float32));
                }
            };
            for (const auto& e : tb::time_reps(1, n, pass))
                per_op[name].push_back(e.time() * 1e6 / inner);
            for (auto* v : {&in.x, &in.y, &in.bias, &in.column}) v->zero_grad();
        }
        return per_op;
    };
    auto first = time_tapegrad(samples / 2 + 1);
    std::map<std::string, double> torch_us;
    std::string torch_version;
    if (!no_torch && tb::python_has_torch()) {
        if (auto j = tb::run_python_peer(tb::source_dir() + "/ops_torch.py",
                                         {std::to_string(samples), std::to_string(inner)})) {
            for (const auto& [name, f] : ops())
                if (j->contains(name)) torch_us[name] = (*j)[name].get<double>();
            torch_version = j->value("torch", "");
        }
    } else if (!no_torch) {
        fmt::print(
            "bench/ops: notice: /usr/bin/python3 cannot import torch (apt-get install "
            "python3-torch); "
            "tapegrad runs alone\n");
    }
    auto second = time_tapegrad(samples / 2);

    std::string table = fmt::format(
        "- Date: {}; CPU: {}; PyTorch {}; command: `./run.sh bench` (`build/bench/ops`)\n"
        "- us per forward + backward on [64, 1024] float32 (bias [1024], column [64, 1]), one "
        "thread, "
        "median of {} samples of {} passes; target: tapegrad / PyTorch <= {}.\n\n"
        "| op | tapegrad us | PyTorch us | tapegrad / PyTorch |\n|---|---|---|---|\n",
        tb::today(), tb::cpu_model(), torch_version.empty() ? "not run" : torch_version, samples,
        inner, target_ratio);
    double worst = 0;
    std::string worst_op;
    int over = 0;
    for (const auto& [name, f] : ops()) {
        std::vector<double> all = first[name];
        all.insert(all.end(), second[name].begin(), second[name].end());
        const double us = tb::summarize(all).median;
        const auto t = torch_us.find(name);
        std::string ratio = "—", torch_cell = "—";
        if (t != torch_us.end()) {
            const double r = us / t->second;
            torch_cell = fmt::format("{:.1f}", t->second);
            ratio = fmt::format("{:.2f}{}", r, r > target_ratio ? " (over)" : "");
            if (r > target_ratio) ++over;
            if (r > worst) {
                worst = r;
                worst_op = name;
            }
        }
        table += fmt::format("| {} | {:.1f} | {} | {} |\n", name, us, torch_cell, ratio);
    }
    const std::string summary =
        torch_us.empty()
            ? std::string("bench/ops: no PyTorch comparison in this run")
            : fmt::format("bench/ops: worst tapegrad / PyTorch {:.2f} ({}); {} of {} ops over {}",
                          worst, worst_op, over, ops().size(), target_ratio);
    fmt::print("{}\n{}\n", table, summary);
    tb::write_section(out, "ops", table + "\n" + summary + "\n");
    return 0;
}
