#include "layers/cells.hpp"

#include <cmath>
#include <iterator>
#include <vector>

#include "ops/arith.hpp"
#include "ops/elementwise.hpp"
#include "ops/index.hpp"
#include "ops/linalg.hpp"
#include "ops/unary.hpp"

namespace tapegrad {

GatedCell::GatedCell(std::string type, std::size_t gates, std::size_t input_size,
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

Variable GatedCell::project_input(const Variable& x) {
    return addmm(bias_ih + bias_hh, x, weight_ih, false, true);
}

RNNCell::RNNCell(std::size_t input_size, std::size_t hidden_size, Generator& gen, DType dtype,
                 Nonlinearity nonlinearity)
    : GatedCell("RNNCell", 1, input_size, hidden_size, gen, dtype), nonlinearity_(nonlinearity) {}

State RNNCell::step(const Variable& x_t, const State& state) {
    const Variable& h = state[0];
    // h_t = tanh(W_xh x_t + b_ih + W_hh h_{t-1} + b_hh)   (x_t arrives as W_xh x_t + b_ih + b_hh)
    const Variable pre = addmm(x_t, h, weight_hh, false, true);
    return {nonlinearity_ == Nonlinearity::tanh ? tanh(pre) : relu(pre)};
}

LSTMCell::LSTMCell(std::size_t input_size, std::size_t hidden_size, Generator& gen, DType dtype,
                   LSTMInit init)
    : GatedCell("LSTMCell", 4, input_size, hidden_size, gen, dtype) {
    const std::size_t H = hidden_size;
    if (init.chrono_t_max > 0) {
        if (init.chrono_t_max <= 2)
            throw ValueError(fmt::format("LSTMCell: chrono_t_max must exceed 2, got {}", init.chrono_t_max));
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

State LSTMCell::step(const Variable& x_t, const State& state) {
    const Variable &h = state[0], &c = state[1];
    // [i f g o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh   (x_t arrives as W_ih x_t + b_ih + b_hh)
    const auto gate = chunk(addmm(x_t, h, weight_hh, false, true), 4, 1);
    const Variable i = sigmoid(gate[0]);       // i_t = σ(W_i[x_t, h_{t-1}] + b_i)
    const Variable f = sigmoid(gate[1]);       // f_t = σ(W_f[x_t, h_{t-1}] + b_f)
    const Variable g = tanh(gate[2]);          // C̃_t = tanh(W_c[x_t, h_{t-1}] + b_c)
    const Variable o = sigmoid(gate[3]);       // o_t = σ(W_o[x_t, h_{t-1}] + b_o)
    const Variable c_next = f * c + i * g;     // C_t = f_t * C_{t-1} + i_t * C̃_t
    const Variable h_next = o * tanh(c_next);  // h_t = o_t * tanh(C_t)
    return {h_next, c_next};
}

GRUCell::GRUCell(std::size_t input_size, std::size_t hidden_size, Generator& gen, DType dtype,
                 GRUVariant variant)
    : GatedCell("GRUCell", 3, input_size, hidden_size, gen, dtype), variant_(variant) {}

Variable GRUCell::project_input(const Variable& x) {
    if (variant_ == GRUVariant::cho) return GatedCell::project_input(x);
    // reset_after: b_hn stays inside r * (W_hn h + b_hn), so only b_ih moves here
    return addmm(bias_ih, x, weight_ih, false, true);
}

namespace {
// The weight slices of the GRU cells whose sequence is running on this thread (innermost last).
struct GRUSlices {
    const GRUCell* cell;
    Variable w_rz, w_n;
};
thread_local std::vector<GRUSlices> open_sequences;

const GRUSlices* slices_of(const GRUCell* cell) {
    for (auto it = open_sequences.rbegin(); it != open_sequences.rend(); ++it)
        if (it->cell == cell) return &*it;
    return nullptr;
}
}  // namespace

void GRUCell::begin_sequence() {
    if (variant_ != GRUVariant::cho) return;
    const long H = static_cast<long>(hidden_size_);
    open_sequences.push_back({this, narrow(weight_hh, 0, 0, 2 * H), narrow(weight_hh, 0, 2 * H, H)});
}

void GRUCell::end_sequence() {
    for (auto it = open_sequences.rbegin(); it != open_sequences.rend(); ++it)
        if (it->cell == this) {
            open_sequences.erase(std::next(it).base());
            return;
        }
}

State GRUCell::step(const Variable& x_t, const State& state) {
    const Variable& h = state[0];
    const long H = static_cast<long>(hidden_size_);
    if (variant_ == GRUVariant::reset_after) {
        // x_t arrives as W_i x_t + b_i (r, z, n)
        const auto x = chunk(x_t, 3, 1);
        const auto hh = chunk(addmm(bias_hh, h, weight_hh, false, true), 3, 1);
        const Variable r = sigmoid(x[0] + hh[0]);  // r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
        const Variable z = sigmoid(x[1] + hh[1]);  // z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        const Variable n = tanh(x[2] + r * hh[2]); // n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
        return {lerp(n, h, z)};                    // h_t = (1 - z_t) * n_t + z_t * h_{t-1}
    }
    // x_t arrives as W_i x_t + b_i + b_h (r, z, n)
    const auto x = split(x_t, {2 * H, H}, 1);
    return cho_step(x[0], x[1], h);
}

std::vector<Variable> GRUCell::project_input_parts(const Variable& x) {
    if (variant_ != GRUVariant::cho) return {project_input(x)};
    const long H = static_cast<long>(hidden_size_);
    const Variable b = bias_ih + bias_hh;  // both biases move into the projection, as in project_input
    return {addmm(narrow(b, 0, 0, 2 * H), x, narrow(weight_ih, 0, 0, 2 * H), false, true),
            addmm(narrow(b, 0, 2 * H, H), x, narrow(weight_ih, 0, 2 * H, H), false, true)};
}

State GRUCell::step_parts(const std::vector<Variable>& x_t, const State& state) {
    if (variant_ != GRUVariant::cho || x_t.size() == 1) return Cell::step_parts(x_t, state);
    if (x_t.size() != 2)
        throw ValueError(fmt::format("{}: step_parts got {} input parts; the Cho GRU's are 2 (r,z and n)",
                                     type_name(), x_t.size()));
    return cho_step(x_t[0], x_t[1], state[0]);
}

// x_rz = W_i x_t + b_i + b_h for r and z, x_n the same for n. The weight slices come from
// begin_sequence, or are cut here when the step runs on its own.
State GRUCell::cho_step(const Variable& x_rz, const Variable& x_n, const Variable& h) {
    const long H = static_cast<long>(hidden_size_);
    const GRUSlices* open = slices_of(this);
    const Variable w_rz = open ? open->w_rz : narrow(weight_hh, 0, 0, 2 * H);
    const Variable w_n = open ? open->w_n : narrow(weight_hh, 0, 2 * H, H);
    const auto rz = chunk(sigmoid(addmm(x_rz, h, w_rz, false, true)), 2, 1);
    const Variable &r = rz[0], &z = rz[1];  // r_t = σ(W_r[x_t, h_{t-1}]),  z_t = σ(W_z[x_t, h_{t-1}])
    const Variable candidate = tanh(addmm(x_n, r * h, w_n, false, true));  // h̃_t = tanh(W[x_t, r_t * h_{t-1}])
    return {lerp(h, candidate, z)};  // h_t = (1 - z_t) * h_{t-1} + z_t * h̃_t = h + z (h̃ - h)
}

}  // namespace tapegrad
