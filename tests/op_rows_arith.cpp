// Gradcheck rows for arithmetic (+, -, *, / with broadcasting and with scalars, neg) and the
// basic unary functions exp, log, tanh, sigmoid, relu.
#include "op_table.hpp"

namespace tapegrad::testing {

namespace {
using V = const std::vector<Variable>&;
}

std::vector<OpRow> rows_arith() {
    return {
        {"add", {{2, 3}, {2, 3}}, [](V x) { return add(x[0], x[1]); }},
        {"add broadcast", {{2, 3}, {3}}, [](V x) { return add(x[0], x[1]); }},
        {"add broadcast both", {{4, 1}, {1, 3}}, [](V x) { return x[0] + x[1]; }},
        {"sub", {{2, 3}, {2, 1}}, [](V x) { return sub(x[0], x[1]); }},
        {"mul", {{2, 3}, {2, 3}}, [](V x) { return mul(x[0], x[1]); }},
        {"mul broadcast", {{3, 1, 2}, {4, 1}}, [](V x) { return x[0] * x[1]; }},
        {"div", {{2, 3}, {3}}, [](V x) { return div(x[0], x[1]); }, Domain::positive},
        {"neg", {{2, 3}}, [](V x) { return neg(x[0]); }},
        {"scalar operands",
         {{2, 3}},
         [](V x) { return (1.0 - x[0]) * 2.0 + 3.0 / (x[0] + 4.0); },
         Domain::positive},
        {"exp", {{2, 3}}, [](V x) { return exp(x[0]); }},
        {"log", {{2, 3}}, [](V x) { return log(x[0]); }, Domain::positive},
        {"tanh", {{2, 3}}, [](V x) { return tanh(x[0]); }},
        {"sigmoid", {{2, 3}}, [](V x) { return sigmoid(x[0]); }},
        {"relu", {{2, 3}}, [](V x) { return relu(x[0]); }},
    };
}

}  // namespace tapegrad::testing
