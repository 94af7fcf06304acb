// Modern cells against PyTorch: minGRU (the paper's parallel log-space form) and sLSTM, one layer
// each: outputs, final states and every gradient, in float64.
// tests/reference/make_modern_reference.py computes the reference from the cells' equations
// (minGRU in Heinsen's log-space scan, checked there against a sequential loop; sLSTM step by
// step with its stabiliser) and writes tests/reference/modern_reference.safetensors.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include <tapegrad/layers/modern_cells.hpp>
#include <tapegrad/tapegrad.hpp>

using namespace tapegrad;

#ifndef TAPEGRAD_SOURCE_DIR
#error "TAPEGRAD_SOURCE_DIR must point at the source tree (tests/CMakeLists.txt defines it)"
#endif

namespace {

constexpr std::size_t I = 3, H = 4;
constexpr double tolerance = 1e-9;

TensorFile& modern_reference() {
    static TensorFile file = load_safetensors(std::string(TAPEGRAD_SOURCE_DIR) +
                                              "/tests/reference/modern_reference.safetensors");
    return file;
}

const Tensor& expected(const std::string& name) {
    const Tensor* t = modern_reference().find(name);
    if (!t) FAIL("reference tensor missing: " << name);
    return *t;
}

// The model's parameters, "<prefix>param.<name>" in the file.
std::vector<std::pair<std::string, Tensor>> reference_params(const std::string& prefix) {
    std::vector<std::pair<std::string, Tensor>> state;
    const std::string p = prefix + "param.";
    for (auto& [n, t] : modern_reference().tensors)
        if (n.rfind(p, 0) == 0) state.emplace_back(n.substr(p.size()), t);
    return state;
}

// Loads the weights, runs forward from the stored initial states (each [1, B, H]), checks the
// outputs, the final states and, after backward of sum(out * w) + sum(h_n * w_final), the
// gradients of x, of every initial state and of every parameter.
void check_parity(Recurrent& model, const std::string& prefix,
                  const std::vector<std::string>& state_names) {
    const auto params = reference_params(prefix);
    REQUIRE(params.size() == model.named_parameters().size());
    const auto report = model.load_state_dict(params);
    REQUIRE_MESSAGE(report.ok(), report.str());

    Variable x(expected(prefix + "x"), true);
    std::vector<Variable> initial;
    for (const auto& s : state_names) initial.emplace_back(expected(prefix + s + "0"), true);
    const auto out = model.forward(x, initial);
    REQUIRE(out.states.size() == state_names.size());

    const double d_out = max_abs_diff(out.output.value(), expected(prefix + "out"));
    MESSAGE(prefix << "out: max |difference| " << d_out);
    CHECK(d_out < tolerance);
    for (std::size_t k = 0; k < state_names.size(); ++k) {
        const std::string name = prefix + state_names[k] + "_n";
        const double d = max_abs_diff(out.states[k].value(), expected(name));
        MESSAGE(name << ": max |difference| " << d);
        CHECK_MESSAGE(d < tolerance, name);
    }

    Variable loss = sum(out.output * Variable(expected(prefix + "w"))) +
                    sum(squeeze(out.states[0], 0) * Variable(expected(prefix + "w_final")));
    CHECK(loss.item() == doctest::Approx(expected(prefix + "loss").item()).epsilon(1e-12));
    loss.backward();

    auto check_grad = [&](const std::string& name, const Variable& v) {
        const std::string full = prefix + "grad." + name;
        const double d = max_abs_diff(v.grad(), expected(full));
        MESSAGE(full << ": max |difference| " << d);
        CHECK_MESSAGE(d < tolerance, full);
    };
    check_grad("x", x);
    for (std::size_t k = 0; k < state_names.size(); ++k)
        check_grad(state_names[k] + "0", initial[k]);
    for (auto& [n, param] : model.named_parameters()) check_grad(n, param);
    current_tape().clear();
}

}  // namespace

TEST_CASE("modern parity: minGRU against PyTorch (the parallel log-space form, float64)") {
    // With log_space the candidate is g(ĥ) > 0 and h0 > 0, as the paper's log-space minGRU;
    // the reference computes Heinsen's scan (and checks it against a sequential loop).
    Generator gen(0);
    Recurrent mingru(
        "MinGRU",
        [](std::size_t in, Generator& g) {
            return std::make_shared<MinGRUCell>(in, H, g, float64,
                                                MinGRUOptions{.log_space = true});
        },
        I, {}, gen);
    REQUIRE(mingru.cell(0).runs_sequences());
    check_parity(mingru, "mingru.", {"h"});
}

TEST_CASE("modern parity: sLSTM against PyTorch (float64)") {
    Generator gen(0);
    Recurrent slstm(
        "SLSTM",
        [](std::size_t in, Generator& g) { return std::make_shared<SLSTMCell>(in, H, g, float64); },
        I, {}, gen);
    REQUIRE(slstm.cell(0).state_count() == 4);
    check_parity(slstm, "slstm.", {"h", "c", "n", "m"});
}
