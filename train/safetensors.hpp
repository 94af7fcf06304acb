// Tensors to and from safetensors files (the format of PyTorch's and Hugging Face's
// `safetensors` package): an 8-byte little-endian header length, a JSON header naming each
// tensor's dtype, shape and byte range, then the raw little-endian data.
//
// Writes are atomic: the data goes to a temporary file in the same folder, is flushed to disk,
// then renamed over the target, so a crash mid-save leaves the previous file intact. The writer
// writes F32, F64 and I64, the dtypes of tapegrad's tensors, so every file it writes reads back
// bit for bit.
//
// Reads check every header field against the file and say exactly what is wrong. The reader
// knows every dtype of the format; tapegrad tensors are float32, float64 or int64, so it makes
// of each:
//   F32, F64                       float32, float64, as stored
//   F16, BF16, F8_E4M3, F8_E5M2,   float32, exactly (each of their values is a float32,
//   F8_E4M3FNUZ, F8_E5M2FNUZ,      subnormals, infinities and NaN included)
//   F8_E8M0
//   BOOL, U8, I8, U16, I16, U32,   int64 holding the integers (BOOL: 0 and 1), exactly; a U64
//   I32, U64, I64                  tensor with a value beyond 2^63 - 1 is skipped
//   F4, F6_E2M3, F6_E3M2, C64      skipped: packed sub-byte floats and complex numbers
// A skipped tensor is checked like any other but listed in TensorFile::skipped with the reason
// instead of in TensorFile::tensors: one tensor tapegrad cannot hold does not make a file
// unreadable. TensorFile::dtype(name) gives the dtype a tensor has in the file.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/tensor.hpp"

namespace tapegrad {

struct TensorFile {
    std::vector<std::pair<std::string, Tensor>> tensors;  // in file order
    std::map<std::string, std::string> metadata;          // the "__metadata__" entry
    // The dtype in the file ("F16", "I64", "BOOL", ...) of every tensor read, by name: of those
    // in `tensors` and those in `skipped`. Files built in memory may leave it empty.
    std::map<std::string, std::string> dtypes;
    // Tensors of the file whose values tapegrad cannot hold exactly, in file order.
    struct Skipped {
        std::string name;
        std::string dtype;  // as in the file
        Shape shape;
        std::string reason;  // "element 0 is 18446744073709551615, beyond int64's ..."
    };
    std::vector<Skipped> skipped;

    const Tensor* find(const std::string& name) const;
    // The tensor's dtype in the file: its entry in `dtypes`, else F32, F64 or I64 from the value
    // for a tensor in `tensors`; empty for a name the file does not hold.
    std::string dtype(const std::string& name) const;
};

// Whether `dtype` (a safetensors dtype string) holds floating-point values, which may become
// a parameter's value: F16, BF16, F32, F64 and the 8-bit floats. Integers and BOOL do not.
bool is_floating_dtype(std::string_view dtype);

// Writes tensors as F32 (float32), F64 (float64) and I64 (int64).
void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Every tensor of the file, converted as above. Throws IOError naming the file and the problem
// (missing, truncated, bad JSON, offsets outside the data, a dtype the format does not have, a
// shape that does not match the byte count...).
TensorFile load_safetensors(const std::string& path);

}  // namespace tapegrad
