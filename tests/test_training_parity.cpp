// Training parity with PyTorch (issue #31): it trains the same, not only computes the same.
// tests/reference/make_training_reference.py trains Embedding -> LSTM / GRU -> Linear in
// PyTorch, float64, for 300 steps (cross-entropy over every position, clip_grad_norm_ 1.0,
// Adam lr 1e-3) and records the initial weights, every batch and every step's loss. Here
// tapegrad starts from those weights, trains on those batches with the same loss, clipping and
// optimizer, and must follow the loss curve step by step.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

using namespace tapegrad;

#ifndef TAPEGRAD_SOURCE_DIR
#error "TAPEGRAD_SOURCE_DIR must point at the source tree (tests/CMakeLists.txt defines it)"
#endif

namespace {

const TensorFile& training_reference() {
    static const TensorFile file = load_safetensors(
        std::string(TAPEGRAD_SOURCE_DIR) + "/tests/reference/training_reference.safetensors");
    return file;
}

const Tensor& expected(const std::string& name) {
    const Tensor* t = training_reference().find(name);
    if (!t) FAIL("training_reference.safetensors has no tensor " << name);
    return *t;
}

std::size_t meta(const std::string& key) {
    return static_cast<std::size_t>(std::stoul(training_reference().metadata.at(key)));
}

// The reference's tensors "<kind>.<stage>.<prefix>.<name>" as "<name>" -> value, in `dtype`.
std::vector<std::pair<std::string, Tensor>> weights(const std::string& kind,
                                                    const std::string& stage,
                                                    const std::string& prefix, DType dtype) {
    const std::string head = kind + "." + stage + "." + prefix + ".";
    std::vector<std::pair<std::string, Tensor>> out;
    for (const auto& [name, t] : training_reference().tensors)
        if (name.rfind(head, 0) == 0) out.emplace_back(name.substr(head.size()), t.to(dtype));
    return out;
}

// Step s's ids or targets ([STEPS, T, B] in the file) as T*B integers in [T, B] order.
std::vector<std::int64_t> batch(const std::string& name, std::size_t step, std::size_t n) {
    const Tensor& all = expected("batch." + name);
    std::vector<std::int64_t> out(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::int64_t>(all.flat(step * n + i));
    return out;
}

struct Curve {
    std::vector<double> loss, grad_norm;
    std::vector<std::pair<std::string, Tensor>> final_weights;  // PyTorch names
};

// Trains the reference's model in `dtype` from its initial weights on its batches.
Curve train(const std::string& kind, DType dtype) {
    const std::size_t V = meta("V"), E = meta("E"), H = meta("H"), T = meta("T"), B = meta("B");
    const std::size_t steps = meta("steps");
    Generator gen(0);  // the initialisation is overwritten by the reference's weights
    Embedding emb(V, E, gen, dtype);
    std::unique_ptr<Recurrent> rnn;
    RecurrentOptions options{.dtype = dtype};
    if (kind == "lstm") {
        rnn = std::make_unique<LSTM>(E, H, options, gen);
    } else {
        options.variant = GRUVariant::reset_after;
        rnn = std::make_unique<GRU>(E, H, options, gen);
    }
    Linear head(H, V, gen, dtype);
    // tapegrad names the recurrent layer's parameters as PyTorch does: weight_ih_l0, ...
    emb.load_state_dict(weights(kind, "init", "emb", dtype));
    rnn->load_state_dict(weights(kind, "init", "rnn", dtype));
    head.load_state_dict(weights(kind, "init", "head", dtype));

    std::vector<Variable> params = emb.parameters();  // PyTorch's order: emb, rnn, head
    for (const Variable& p : rnn->parameters()) params.push_back(p);
    for (const Variable& p : head.parameters()) params.push_back(p);
    Adam optimizer(params, {.lr = std::stod(training_reference().metadata.at("lr"))});
    const double max_norm = std::stod(training_reference().metadata.at("max_norm"));

    Curve curve;
    for (std::size_t s = 0; s < steps; ++s) {
        const Variable x = reshape(emb.forward(batch("ids", s, T * B)), Shape{T, B, E});
        const Variable logits = head(rnn->forward(x).output);  // [T, B, V]
        const Variable loss =
            cross_entropy(reshape(logits, Shape{T * B, V}), batch("targets", s, T * B));
        optimizer.zero_grad();
        loss.backward();
        curve.grad_norm.push_back(clip_grad_norm(params, max_norm));
        optimizer.step();
        curve.loss.push_back(loss.item());
    }
    for (const auto& [n, t] : emb.state_dict()) curve.final_weights.emplace_back("emb." + n, t);
    for (const auto& [n, t] : rnn->state_dict()) curve.final_weights.emplace_back("rnn." + n, t);
    for (const auto& [n, t] : head.state_dict()) curve.final_weights.emplace_back("head." + n, t);
    current_tape().clear();
    return curve;
}

double rel(double a, double e) { return std::abs(a - e) / std::max(std::abs(e), 1e-300); }

// Largest relative difference of each element of `a` from the reference tensor `e`, relative
// to e's largest magnitude (weights pass through zero; a per-element ratio would blow up there).
double rel_tensor(const Tensor& a, const Tensor& e) {
    double scale = 0;
    for (std::size_t i = 0; i < e.numel(); ++i) scale = std::max(scale, std::abs(e.flat(i)));
    return max_abs_diff(a.to(float64), e) / scale;
}

}  // namespace

TEST_CASE("training parity with PyTorch: LSTM and GRU follow the float64 loss curve") {
    const std::size_t steps = meta("steps");
    REQUIRE(steps == 300);
    REQUIRE(training_reference().dtype("batch.ids") == "U8");  // integers, read as float64
    for (const std::string kind : {"lstm", "gru"}) {
        CAPTURE(kind);
        const Tensor& want = expected(kind + ".loss");
        const Tensor& want_norm = expected(kind + ".grad_norm");
        REQUIRE(want.numel() == steps);

        // float64: the same arithmetic as PyTorch's up to rounding, at every step.
        const Curve c64 = train(kind, float64);
        double worst_loss = 0, worst_norm = 0;
        std::size_t clipped = 0;
        for (std::size_t s = 0; s < steps; ++s) {
            CAPTURE(s);
            const double d = rel(c64.loss[s], want.flat(s));
            worst_loss = std::max(worst_loss, d);
            worst_norm = std::max(worst_norm, rel(c64.grad_norm[s], want_norm.flat(s)));
            clipped += want_norm.flat(s) > 1.0;
            CHECK(d <= 1e-6);
        }
        CHECK(worst_norm <= 1e-6);
        CHECK(clipped > 0);          // clipping acted on some steps ...
        CHECK(clipped < steps / 2);  // ... and not on others
        double worst_weight = 0;
        for (const auto& [name, t] : c64.final_weights) {
            CAPTURE(name);
            const double d = rel_tensor(t, expected(kind + ".final." + name));
            worst_weight = std::max(worst_weight, d);
            CHECK(d <= 1e-6);
        }
        MESSAGE(
            fmt::format("{} float64: max relative loss difference {:.3g} over {} steps "
                        "(clipped at {}); gradient norm {:.3g}; final weights {:.3g}",
                        kind, worst_loss, steps, clipped, worst_norm, worst_weight));

        // float32: weights and data cast; the drift from PyTorch's float64 curve is reported,
        // with only a sanity bound (it must still train the same way).
        const Curve c32 = train(kind, float32);
        double drift = 0;
        for (std::size_t s = 0; s < steps; ++s)
            drift = std::max(drift, rel(c32.loss[s], want.flat(s)));
        MESSAGE(fmt::format("{} float32: max relative loss drift from PyTorch float64 {:.3g}", kind,
                            drift));
        CHECK(drift < 1e-2);
        CHECK(c32.loss.back() < 0.6 * c32.loss.front());
    }
}
