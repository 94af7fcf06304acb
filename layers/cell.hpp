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

    // A cell whose recurrence is linear in its state (minGRU, an LRU, a diagonal state space)
    // may also run a whole sequence at once, as one scan instead of T steps. The driver then
    // calls sequence() in place of step(), with everything else unchanged: layers,
    // bidirectional, lengths, initial states, dropout. It gets every step's input, x [T, B, I]
    // (or its projection, [T, B, P]), the initial state and the Steps below; it returns every
    // step's output [T, B, H] and the state after the last step (the first one, reversed).
    // Its results must equal T calls of step(): outputs at padded steps do not matter (the
    // driver zeroes them), but the state must pass through them unchanged; scan() does both.
    struct Steps {
        Tensor keep;           // [T, B, 1]: 1 at steps holding data, 0 in the padding; undefined
                               // when every sequence runs all T steps
        bool reverse = false;  // run from step T-1 down to 0 (the reverse direction)
    };
    struct SequenceResult {
        Variable outputs;  // [T, B, H]
        State state;       // the final state
    };
    virtual bool runs_sequences() const { return false; }
    virtual SequenceResult sequence(const Variable& x, const State& state, const Steps& steps);
};

// For Cell::sequence: h_t = a_t ⊙ h_{t-1} + b_t over the steps (linear_scan, reversed when
// steps.reverse), with a = 1 and b = 0 at padded steps so the state passes them unchanged.
// a and b are [T, B, H], h0 [B, H]; returns every h_t, [T, B, H].
Variable scan(const Variable& a, const Variable& b, const Variable& h0, const Cell::Steps& steps);
// The state after the last step of scan's result: h[T-1], or h[0] reversed.
Variable last_state(const Variable& h, const Cell::Steps& steps);

}  // namespace tapegrad
