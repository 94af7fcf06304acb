// Your own recurrent cell in about 30 lines: a peephole LSTM (Gers & Schmidhuber 2000), which
// tapegrad does not ship. Implementing the Cell interface is all it takes to get stacking,
// bidirectional layers, variable lengths, gradcheck and checkpoints from the recurrent driver.
//   build/examples/custom_cell [--steps N] [--seed S]
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <tapegrad/tapegrad.hpp>

using namespace tapegrad;

// --- the cell -------------------------------------------------------------------------------
class PeepholeLSTMCell : public Cell {
public:
    PeepholeLSTMCell(std::size_t in, std::size_t hidden, Generator& g, DType dt = float32)
        : Cell("PeepholeLSTMCell"), in_(in), hidden_(hidden) {
        const double k = 1.0 / std::sqrt(static_cast<double>(hidden));
        w_x = register_parameter("w_x", g.uniform({in, 4 * hidden}, -k, k, dt));
        w_h = register_parameter("w_h", g.uniform({hidden, 4 * hidden}, -k, k, dt));
        bias = register_parameter("bias", Tensor::zeros({4 * hidden}, dt));
        peep = register_parameter("peep", g.uniform({3, hidden}, -k, k, dt));  // p_i, p_f, p_o
    }
    std::size_t input_size() const override { return in_; }
    std::size_t hidden_size() const override { return hidden_; }
    std::size_t state_count() const override { return 2; }  // h, c
    bool projects_input() const override { return true; }   // x W_x for all steps at once
    Variable project_input(const Variable& x) override { return matmul(x, w_x) + bias; }

    State step(const Variable& xw, const State& s) override {
        const Variable &h = s[0], &c = s[1];
        const auto z = chunk(xw + matmul(h, w_h), 4, 1);
        const auto p = chunk(peep, 3, 0);
        const Variable i = sigmoid(z[0] + p[0] * c);     // i_t = σ(W_i[x, h] + p_i ∘ c_{t-1})
        const Variable f = sigmoid(z[1] + p[1] * c);     // f_t = σ(W_f[x, h] + p_f ∘ c_{t-1})
        const Variable c_next = f * c + i * tanh(z[2]);  // c_t = f_t c_{t-1} + i_t tanh(W_c[x, h])
        const Variable o = sigmoid(z[3] + p[2] * c_next);  // o_t = σ(W_o[x, h] + p_o ∘ c_t)
        return {o * tanh(c_next), c_next};                 // h_t = o_t tanh(c_t)
    }
    Variable w_x, w_h, bias, peep;

private:
    std::size_t in_, hidden_;
};
// ---------------------------------------------------------------------------------------------

int main(int argc, char** argv) {
    tune_malloc();  // optional: glibc keeps freed buffers for the next step
    CLI::App app{
        "A user-defined peephole LSTM: 2 layers, bidirectional, variable lengths, gradcheck, "
        "training"};
    int steps = 300;
    std::uint64_t seed = 1;
    std::string checkpoint = "custom_cell.safetensors";
    app.add_option("--steps", steps, "training steps")->check(CLI::PositiveNumber);
    app.add_option("--seed", seed, "seed for initialisation and data");
    app.add_option("--checkpoint", checkpoint, "where to save the trained model");
    CLI11_PARSE(app, argc, argv);
    warn_if_slow_blas();

    Generator gen(seed);
    auto make = [](std::size_t in, Generator& g) {
        return std::make_shared<PeepholeLSTMCell>(in, 8, g);
    };
    Recurrent rnn("PeepholeLSTM", make, 1, {.num_layers = 2, .bidirectional = true}, gen);
    Linear head(16, 1, gen);
    fmt::print("{}", rnn.summary());

    // 1. gradcheck the whole stack (float64, variable lengths) in one call.
    Recurrent small(
        "PeepholeLSTM",
        [](std::size_t in, Generator& g) { return std::make_shared<PeepholeLSTMCell>(in, 2, g); },
        1, {.num_layers = 2, .bidirectional = true}, gen);
    auto report = gradcheck(small,
                            [&](const std::vector<Variable>& x) {
                                auto out = small.forward(x[0], {}, {4, 2});
                                return sum(out.output * out.output) + sum(out.states[1]);
                            },
                            {gen.normal({4, 2, 1}, 0, 1, float64)});
    fmt::print("{}\n", report);
    if (!report.ok()) return 1;

    // 2. train: the mean of each (variable-length) sequence of random numbers.
    Adam opt({param_group(rnn), param_group(head)}, {.lr = 1e-2});
    const std::size_t T = 12, B = 16;
    double loss_value = 0;
    for (int step = 1; step <= steps; ++step) {
        Tensor x = gen.uniform({T, B, 1}, -1, 1, float32), y = Tensor::zeros({B, 1}, float32);
        std::vector<std::size_t> lengths(B);
        for (std::size_t b = 0; b < B; ++b) {
            lengths[b] = 4 + gen.below(T - 3);
            for (std::size_t t = 0; t < lengths[b]; ++t)
                y.set_flat(b, y.flat(b) + x.flat(t * B + b) / lengths[b]);
        }
        auto out = rnn.forward(Variable(x), {}, lengths);
        // the final states of both directions of the last layer summarise each sequence
        Variable summary = concat({select(out.states[0], 0, 2), select(out.states[0], 0, 3)}, 1);
        Variable loss = mse_loss(head(summary), Variable(y));
        opt.zero_grad();
        loss.backward();
        clip_grad_norm(opt.parameters(), 1.0);
        opt.step();
        loss_value = loss.item();
        if (step % 50 == 0 || step == 1) fmt::print("step {:4d}  mse {:.5f}\n", step, loss_value);
    }
    save(rnn, checkpoint);
    fmt::print("saved {} ({} parameters, names like {})\n", checkpoint, rnn.parameter_count(),
               rnn.named_parameters().front().first);
    return loss_value < 0.01 ? 0 : 1;
}
