// The built-in cells. Parameter names, shapes and gate order follow PyTorch, so weights move
// between the two without reshuffling: weight_ih [G*H, I], weight_hh [G*H, H], bias_ih [G*H],
// bias_hh [G*H]; LSTM gates i, f, g, o; GRU gates r, z, n. Default initialisation
// U(-1/sqrt(H), 1/sqrt(H)) for every parameter, in that order, from the given generator.
#pragma once

#include "core/random.hpp"
#include "layers/cell.hpp"

namespace tapegrad {

// Shared by the built-in cells: sizes, the four parameters and the input projection
// W_ih x + b_ih + b_hh for all time steps at once (both biases added there, once).
class BuiltinCell : public Cell {
public:
    BuiltinCell(std::string type, std::size_t gates, std::size_t input_size,
                std::size_t hidden_size, Generator& gen, DType dtype);
    std::size_t input_size() const override { return input_size_; }
    std::size_t hidden_size() const override { return hidden_size_; }
    bool projects_input() const override { return true; }
    Variable project_input(const Variable& x) override;

    Variable weight_ih, weight_hh, bias_ih, bias_hh;

protected:
    std::size_t input_size_, hidden_size_;
};

enum class Nonlinearity { tanh, relu };

// The article's RNN (Elman): h_t = f(W_xh x_t + W_hh h_{t-1} + b_h), one "gate".
class RNNCell : public BuiltinCell {
public:
    RNNCell(std::size_t input_size, std::size_t hidden_size, Generator& gen, DType dtype = float32,
            Nonlinearity nonlinearity = Nonlinearity::tanh);
    State step(const Variable& x_t, const State& state) override;

private:
    Nonlinearity nonlinearity_;
};

struct LSTMInit {
    // Added to the forget gate's bias: bias_ih's forget slice starts at forget_bias and
    // bias_hh's at 0, so their sum, the gate's bias, is forget_bias (1.0: Jozefowicz et al.
    // 2015). PyTorch scripts' bias_ih[H:2H].fill_(1) keeps bias_hh's random slice instead.
    double forget_bias = 0.0;
    // Chrono initialisation (Tallec & Ollivier 2018) when > 0: b_f = log(U(1, T_max - 1)),
    // b_i = -b_f, for dependencies over about T_max steps. Overrides forget_bias.
    double chrono_t_max = 0.0;

    bool operator==(const LSTMInit&) const = default;
};

class LSTMCell : public BuiltinCell {
public:
    LSTMCell(std::size_t input_size, std::size_t hidden_size, Generator& gen, DType dtype = float32,
             LSTMInit init = {});
    std::size_t state_count() const override { return 2; }  // h, c
    State step(const Variable& x_t, const State& state) override;
};

enum class GRUVariant {
    cho,          // the source article and Cho et al. 2014: reset applied before W_hn
    reset_after,  // cuDNN / PyTorch / Keras reset_after=True: reset applied after W_hn
};

class GRUCell : public BuiltinCell {
public:
    GRUCell(std::size_t input_size, std::size_t hidden_size, Generator& gen, DType dtype = float32,
            GRUVariant variant = GRUVariant::cho);
    Variable project_input(const Variable& x) override;
    State step(const Variable& x_t, const State& state) override;
    // Cho: the r,z rows and the n rows of weight_hh sliced once per sequence, not per step.
    StepFn sequence_step() override;
    GRUVariant variant() const { return variant_; }

private:
    State cho_step(const Variable& x_t, const Variable& h, const Variable& w_rz,
                   const Variable& w_n);
    GRUVariant variant_;
};

}  // namespace tapegrad
