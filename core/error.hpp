// Every failure tapegrad reports is a tapegrad::Error. Messages name the op, the shapes and
// dtypes involved and, where known, the user's call site:
//   matmul: [32,64] x [128,16]: inner dimensions 64 and 128 differ (at train.cpp:41)
#pragma once

#include <source_location>
#include <stdexcept>
#include <string>
#include <string_view>

namespace tapegrad {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Shapes that do not fit the op (broadcasting, matmul dimensions, axes out of range).
class ShapeError : public Error {
    using Error::Error;
};
// float32 and float64 mixed in one op, or a tensor of the wrong dtype.
class DTypeError : public Error {
    using Error::Error;
};
// A value outside the op's domain: an index out of range, a negative probability, ...
class ValueError : public Error {
    using Error::Error;
};
// Misuse of the tape: backward twice over a freed graph, a variable from a cleared tape, ...
class GraphError : public Error {
    using Error::Error;
};
// NaN or Inf found while anomaly mode is on.
class AnomalyError : public Error {
    using Error::Error;
};
// Files: checkpoints that are missing, truncated or inconsistent.
class IOError : public Error {
    using Error::Error;
};

// "file.cpp:12"; empty when the location is unknown.
std::string call_site(const std::source_location& loc);

// Builds the message "<op>: <what> (at file:line)" and throws E.
template <class E = Error>
[[noreturn]] void fail(std::string_view op, const std::string& what,
                       const std::source_location& loc = {}) {
    std::string msg(op);
    msg += ": ";
    msg += what;
    if (auto at = call_site(loc); !at.empty()) msg += " (at " + at + ")";
    throw E(msg);
}

}  // namespace tapegrad
