// Modern recurrent cells. minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?") and
// a real diagonal selective state space (Mamba-style, Gu & Dao 2023) are linear in their state:
// they run a whole sequence as one scan (Cell::sequence), minGRU also in the paper's log-space
// form (Heinsen 2023); step() gives the same numbers one step at a time. IndRNN (Li et al. 2018)
// and xLSTM's sLSTM (Beck et al. 2024, exponential gating with a log-space stabiliser) are not
// linear in their state and run step by step. Every cell projects its input for all steps at
// once, P = x W_ih^T + b_ih; parameters are drawn U(-1/sqrt(H), 1/sqrt(H)) in the order
// registered, except IndRNN's weight_hh (U(0, 1)) and the state space's A_log (log(1..H)).
#pragma once

#include <utility>

#include "core/random.hpp"
#include "layers/cell.hpp"

namespace tapegrad {

// Shared by the cells below: sizes, weight_ih and bias_ih, and the input projection.
class ProjectedCell : public Cell {
public:
    ProjectedCell(std::string type, std::size_t input_size, std::size_t hidden_size);
    std::size_t input_size() const override { return input_size_; }
    std::size_t hidden_size() const override { return hidden_size_; }
    bool projects_input() const override { return true; }
    Variable project_input(const Variable& x) override;  // x W_ih^T + b_ih

    Variable weight_ih, bias_ih;

protected:
    Tensor draw(const Shape& shape, Generator& gen, DType dtype) const;  // U(-1/√H, 1/√H)
    std::size_t input_size_, hidden_size_;
};

struct MinGRUOptions {
    bool log_space = false;  // the paper's log-space form: positive candidates g(ĥ), h0 > 0
};

// h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ h̃_t with z_t = σ(k_t) (chunks of P: k, ĥ).
class MinGRUCell : public ProjectedCell {
public:
    MinGRUCell(std::size_t input_size, std::size_t hidden_size, Generator& gen,
               DType dtype = float32, MinGRUOptions options = {});
    State step(const Variable& x_t, const State& state) override;
    bool runs_sequences() const override { return true; }
    SequenceResult sequence(const Variable& x, const State& state, const Steps& steps) override;
    const MinGRUOptions& options() const { return options_; }

private:
    SequenceResult log_space_sequence(const Variable& x, const Variable& h0, const Steps& steps);
    MinGRUOptions options_;
};

// h_t = f'_t ⊙ h_{t−1} + i'_t ⊙ ĥ_t, f' and i' the normalised σ gates (chunks of P: f, i, ĥ).
class MinLSTMCell : public ProjectedCell {
public:
    MinLSTMCell(std::size_t input_size, std::size_t hidden_size, Generator& gen,
                DType dtype = float32);
    State step(const Variable& x_t, const State& state) override;
    bool runs_sequences() const override { return true; }
    SequenceResult sequence(const Variable& x, const State& state, const Steps& steps) override;
};

// h_t = relu(P_t + u ⊙ h_{t−1}), u = weight_hh [H]: each unit its own recurrent weight.
class IndRNNCell : public ProjectedCell {
public:
    IndRNNCell(std::size_t input_size, std::size_t hidden_size, Generator& gen,
               DType dtype = float32);
    State step(const Variable& x_t, const State& state) override;

    Variable weight_hh;
};

// h_t = exp(−Δ_t ⊙ A) ⊙ h_{t−1} + Δ_t ⊙ u_t, Δ_t = softplus(δ_t), A = softplus(A_log)
// (chunks of P: δ, u).
class SelectiveSSMCell : public ProjectedCell {
public:
    SelectiveSSMCell(std::size_t input_size, std::size_t hidden_size, Generator& gen,
                     DType dtype = float32);
    State step(const Variable& x_t, const State& state) override;
    bool runs_sequences() const override { return true; }
    SequenceResult sequence(const Variable& x, const State& state, const Steps& steps) override;

    Variable A_log;

private:
    std::pair<Variable, Variable> coefficients(const Variable& p);  // a_t, b_t from P
};

// sLSTM: exponential input and forget gates, stabilised by m; states h, c, n, m.
class SLSTMCell : public ProjectedCell {
public:
    SLSTMCell(std::size_t input_size, std::size_t hidden_size, Generator& gen,
              DType dtype = float32);
    std::size_t state_count() const override { return 4; }  // h, c, n, m
    State step(const Variable& x_t, const State& state) override;

    Variable weight_hh;
};

}  // namespace tapegrad
