// tapegrad: tape-based reverse-mode autodiff for recurrent networks in C++.
// One include for users: #include <tapegrad/tapegrad.hpp>
#pragma once

#include "core/blas.hpp"
#include "core/dtype.hpp"
#include "core/error.hpp"
#include "core/gradcheck.hpp"
#include "core/random.hpp"
#include "core/tape.hpp"
#include "core/tensor.hpp"
#include "core/variable.hpp"
#include "ops/arith.hpp"
#include "ops/linalg.hpp"
#include "ops/reduce.hpp"
#include "ops/shape.hpp"
#include "ops/unary.hpp"
