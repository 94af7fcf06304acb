// The cell interface: one time step from an input and a state to the new state. Any type that
// implements it — the built-in RNN, LSTM and GRU cells or a user's own — gets everything the
// recurrent driver (layers/recurrent.hpp) offers: stacking, bidirectional, variable lengths,
// initial states, dropout between layers and truncated BPTT.
#pragma once

#include <functional>
#include <vector>

#include "layers/module.hpp"

namespace tapegrad {

using State = std::vector<Variable>;  // e.g. {h} or {h, c}, each [B, hidden_size]

class Cell : public Module {
public:
    using Module::Module;
    virtual std::size_t input_size() const = 0;
    virtual std::size_t hidden_size() const = 0;
    // How many tensors the state holds (1 for RNN and GRU, 2 for LSTM). The first one is the
    // cell's output at each step.
    virtual std::size_t state_count() const { return 1; }

    // A cell may declare an input projection, computed for all time steps at once as one
    // matmul before the time loop: project_input([N, input_size]) -> [N, P]; step() then gets
    // the projected rows instead of raw inputs. Cells that do not, get x_t [B, input_size].
    virtual bool projects_input() const { return false; }
    virtual Variable project_input(const Variable& x) { return x; }
    // One step: x_t [B, input_size] (or its projection), state -> new state.
    virtual State step(const Variable& x_t, const State& state) = 0;

    // The one per-sequence hook. The driver calls it once per sequence (per layer and
    // direction, before projecting the inputs) and calls what it returns at every step. By
    // default that is step(); a cell whose steps share work (slices of a weight, say) does
    // that work here, once, and returns a step that uses it.
    using StepFn = std::function<State(const Variable& x_t, const State& state)>;
    virtual StepFn sequence_step() {
        return [this](const Variable& x_t, const State& state) { return step(x_t, state); };
    }
};

}  // namespace tapegrad
