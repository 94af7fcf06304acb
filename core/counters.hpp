// Counters that tests and benchmarks read to see that a speed path was taken (or not). Not
// part of the API: the one door to them is this header, not included by tapegrad.hpp.
#pragma once

#include <cstddef>

namespace tapegrad::detail {

// Sums of deferred products on this thread whose x's were read in place from a joined
// gradient instead of being stacked (core/products.cpp).
std::size_t products_read_in_place();
// Parts of deferred products started during sweeps, on any thread (core/products.cpp).
std::size_t products_started_early();
// Backwards of split, chunk or unbind on this thread that found every piece's gradient
// already in its place in the joined gradient (ops/index.cpp).
std::size_t splits_joined_in_place();
// Right operands this thread packed for the packed GEMM kernel (op(B) and op(B)ᵀ count one
// each), in WeightPackScopes and for products of many rows (ops/linalg.cpp).
std::size_t weights_packed();

}  // namespace tapegrad::detail
