// Gradient clipping, as torch.nn.utils.clip_grad_norm_ and clip_grad_value_. Both change the
// gradients of `params` in place and skip parameters without a gradient.
#pragma once

#include <source_location>
#include <vector>

#include "core/variable.hpp"

namespace tapegrad {

// Scales every gradient by min(1, max_norm / (total_norm + 1e-6)), where total_norm is the
// norm_type-norm (any p > 0, or infinity) of all gradients together as one vector, and returns
// total_norm (0 when no parameter has a gradient). With error_if_nonfinite, a NaN or infinite
// total norm throws ValueError and no gradient changes.
double clip_grad_norm(const std::vector<Variable>& params, double max_norm, double norm_type = 2.0,
                      bool error_if_nonfinite = false,
                      const std::source_location& loc = std::source_location::current());

// Clamps every gradient element to [-clip_value, clip_value].
void clip_grad_value(const std::vector<Variable>& params, double clip_value,
                     const std::source_location& loc = std::source_location::current());

}  // namespace tapegrad
