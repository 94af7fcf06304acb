#include "layers/cells.hpp"

#include <cmath>

#include "ops/arith.hpp"
#include "ops/elementwise.hpp"
#include "ops/index.hpp"
#include "ops/linalg.hpp"
#include "ops/unary.hpp"

namespace tapegrad {

BuiltinCell::BuiltinCell(std::string type, std::size_t gates, std::size_t input_size,
                         std::size_t hidden_size, Generator& gen, DType dtype)
    : Cell(std::move(type)), input_size_(input_size), hidden_size_(hidden_size) {
    if (input_size == 0 || hidden_size == 0)
        throw ValueError(fmt::format("{}: input_size ({}) and hidden_size ({}) must be positive",
                                     type_name(), input_size, hidden_size));
    const double k = 1.0 / std::sqrt(static_cast<double>(hidden_size));
    const std::size_t g = gates * hidden_size;
    weight_ih = register_parameter("weight_ih", gen.uniform({g, input_size}, -k, k, dtype));
    weight_hh = register_parameter("weight_hh", gen.uniform({g, hidden_size}, -k, k, dtype));
    bias_ih = register_parameter("bias_ih", gen.uniform({g}, -k, k, dtype));
    bias_hh = register_parameter("bias_hh", gen.uniform({g}, -k, k, dtype));
}

// W_ih x + b_ih + b_hh for every time step at once.
Variable BuiltinCell::project_input(const Variable& x) {
    return linear(x, weight_ih, bias_ih + bias_hh);
}

// ---- RNN

RNNCell::RNNCell(std::size_t input_size, std::size_t hidden_size, Generator& gen, DType dtype,
                 Nonlinearity nonlinearity)
    : BuiltinCell("RNNCell", 1, input_size, hidden_size, gen, dtype), nonlinearity_(nonlinearity) {}

// x_t arrives projected: W_xh x_t + b_h.
State RNNCell::step(const Variable& x_t, const State& state) {
    const Variable& h = state[0];
    const Variable pre = linear(h, weight_hh, x_t);  // W_xh x_t + W_hh h_{t-1} + b_h
    return {name(nonlinearity_ == Nonlinearity::tanh ? tanh(pre) : relu(pre),  // h_t = f(pre)
                 "h_t")};
}

// ---- LSTM

LSTMCell::LSTMCell(std::size_t input_size, std::size_t hidden_size, Generator& gen, DType dtype,
                   LSTMInit init)
    : BuiltinCell("LSTMCell", 4, input_size, hidden_size, gen, dtype) {
    const std::size_t H = hidden_size;
    if (init.chrono_t_max > 0) {
        if (init.chrono_t_max <= 2)
            throw ValueError(
                fmt::format("LSTMCell: chrono_t_max must exceed 2, got {}", init.chrono_t_max));
        // b_f = log(U(1, T_max - 1)), b_i = -b_f; the hidden-side biases of i and f are 0
        for (std::size_t j = 0; j < H; ++j) {
            const double bf = std::log(gen.uniform(1.0, init.chrono_t_max - 1.0));
            bias_ih.mutable_value().set_flat(H + j, bf);
            bias_ih.mutable_value().set_flat(j, -bf);
            bias_hh.mutable_value().set_flat(H + j, 0.0);
            bias_hh.mutable_value().set_flat(j, 0.0);
        }
    } else if (init.forget_bias != 0.0) {
        // the forget gate's total bias b_ih + b_hh starts at forget_bias
        for (std::size_t j = 0; j < H; ++j) {
            bias_ih.mutable_value().set_flat(H + j, init.forget_bias);
            bias_hh.mutable_value().set_flat(H + j, 0.0);
        }
    }
}

// x_t arrives projected: W_{i,f,c,o} x_t + b, the four gates' columns side by side.
State LSTMCell::step(const Variable& x_t, const State& state) {
    const Variable &h = state[0], &c = state[1];
    const auto gate = chunk(linear(h, weight_hh, x_t), 4, 1);  // W [x_t, h_{t-1}] + b
    const Variable i = name(sigmoid(gate[0]), "input gate");   // i_t = σ(W_i[x_t, h_{t-1}] + b_i)
    const Variable f = name(sigmoid(gate[1]), "forget gate");  // f_t = σ(W_f[x_t, h_{t-1}] + b_f)
    const Variable c_tilde = name(tanh(gate[2]), "candidate C̃");  // C̃_t = tanh(W_c[..] + b_c)
    const Variable o = name(sigmoid(gate[3]), "output gate");  // o_t = σ(W_o[x_t, h_{t-1}] + b_o)
    const Variable c_next = name(f * c + i * c_tilde, "C_t");  // C_t = f_t * C_{t-1} + i_t * C̃_t
    return {name(o * tanh(c_next), "h_t"), c_next};            // h_t = o_t * tanh(C_t)
}

// ---- GRU

GRUCell::GRUCell(std::size_t input_size, std::size_t hidden_size, Generator& gen, DType dtype,
                 GRUVariant variant)
    : BuiltinCell("GRUCell", 3, input_size, hidden_size, gen, dtype), variant_(variant) {}

Variable GRUCell::project_input(const Variable& x) {
    if (variant_ == GRUVariant::cho) return BuiltinCell::project_input(x);
    // reset_after: b_hn stays inside r * (W_hn h + b_hn), so only b_ih moves here
    return linear(x, weight_ih, bias_ih);
}

State GRUCell::step(const Variable& x_t, const State& state) {
    if (variant_ == GRUVariant::cho) return sequence_step()(x_t, state);
    // reset_after, as PyTorch: x_t arrives as W_i x_t + b_i (r, z, n)
    const Variable& h = state[0];
    const auto x = chunk(x_t, 3, 1);
    const auto hh = chunk(linear(h, weight_hh, bias_hh), 3, 1);
    // r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    const Variable r = name(sigmoid(x[0] + hh[0]), "reset gate");
    // z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    const Variable z = name(sigmoid(x[1] + hh[1]), "update gate");
    // n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
    const Variable n = name(tanh(x[2] + r * hh[2]), "candidate n");
    return {name(lerp(n, h, z), "h_t")};  // h_t = (1 - z_t) * n_t + z_t * h_{t-1}
}

Cell::StepFn GRUCell::sequence_step() {
    if (variant_ != GRUVariant::cho) return Cell::sequence_step();
    const long H = static_cast<long>(hidden_size_);
    const Variable w_rz = narrow(weight_hh, 0, 0, 2 * H), w_n = narrow(weight_hh, 0, 2 * H, H);
    return [this, w_rz, w_n](const Variable& x_t, const State& state) {
        return cho_step(x_t, state[0], w_rz, w_n);
    };
}

// The article's GRU: x_t arrives as W_i x_t + b_i + b_h (r, z, n), w_rz and w_n are the rows
// of weight_hh for r, z and for the candidate.
State GRUCell::cho_step(const Variable& x_t, const Variable& h, const Variable& w_rz,
                        const Variable& w_n) {
    const long H = static_cast<long>(hidden_size_);
    const auto x = split(x_t, {2 * H, H}, 1);
    const auto rz = chunk(sigmoid(linear(h, w_rz, x[0])), 2, 1);
    const Variable r = name(rz[0], "reset gate");   // r_t = σ(W_r[x_t, h_{t-1}])
    const Variable z = name(rz[1], "update gate");  // z_t = σ(W_z[x_t, h_{t-1}])
    const Variable h_tilde =
        name(tanh(linear(r * h, w_n, x[1])), "candidate h̃");  // h̃_t = tanh(W[x_t, r_t * h_{t-1}])
    return {name(lerp(h, h_tilde, z), "h_t")};  // h_t = (1 - z_t) * h_{t-1} + z_t * h̃_t
}

}  // namespace tapegrad
