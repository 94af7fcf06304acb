// Tensors to and from safetensors files (the format of PyTorch's and Hugging Face's
// `safetensors` package): an 8-byte little-endian header length, a JSON header naming each
// tensor's dtype, shape and byte range, then the raw little-endian data.
//
// Writes are atomic: the data goes to a temporary file in the same folder, is flushed to disk,
// then renamed over the target, so a crash mid-save leaves the previous file intact.
// Reads check every header field against the file and say exactly what is wrong.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.hpp"

namespace tapegrad {

struct TensorFile {
    std::vector<std::pair<std::string, Tensor>> tensors;  // in file order
    std::map<std::string, std::string> metadata;          // the "__metadata__" entry
    const Tensor* find(const std::string& name) const;
};

void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Throws IOError naming the file and the problem (missing, truncated, bad JSON, offsets
// outside the data, a dtype other than F32/F64, a shape that does not match the byte count...).
TensorFile load_safetensors(const std::string& path);

}  // namespace tapegrad
