// tapegrad: tape-based reverse-mode autodiff for recurrent networks in C++.
// One include for users: #include <tapegrad/tapegrad.hpp>
#pragma once

// the engine: tensors, variables, the tape and backward
#include "core/dtype.hpp"
#include "core/error.hpp"
#include "core/graph.hpp"
#include "core/memory.hpp"
#include "core/random.hpp"
#include "core/tape.hpp"
#include "core/tensor.hpp"
#include "core/variable.hpp"
// kernels the ops run on (and the switches users may want: warn_if_slow_blas, say)
#include "kernels/blas.hpp"
#include "kernels/isa.hpp"
#include "kernels/packed_gemm.hpp"
#include "kernels/vector_math.hpp"
// differentiable ops, each with its backward rule
#include "ops/arith.hpp"
#include "ops/elementwise.hpp"
#include "ops/index.hpp"
#include "ops/linalg.hpp"
#include "ops/loss.hpp"
#include "ops/nn.hpp"
#include "ops/reduce.hpp"
#include "ops/scan.hpp"
#include "ops/shape.hpp"
#include "ops/unary.hpp"
// modules, cells and the recurrent driver
#include "layers/basic.hpp"
#include "layers/cell.hpp"
#include "layers/cells.hpp"
#include "layers/init.hpp"
#include "layers/modern_cells.hpp"
#include "layers/module.hpp"
#include "layers/recurrent.hpp"
// optimizers, clipping, schedules
#include "optim/adagrad.hpp"
#include "optim/adam.hpp"
#include "optim/clip.hpp"
#include "optim/optimizer.hpp"
#include "optim/rmsprop.hpp"
#include "optim/schedule.hpp"
#include "optim/sgd.hpp"
// training utilities: gradcheck, parallel_backward, checkpoints
#include "train/data.hpp"
#include "train/dot.hpp"
#include "train/gradcheck.hpp"
#include "train/parallel.hpp"
#include "train/safetensors.hpp"
