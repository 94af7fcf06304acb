// Run-time element types. One model definition runs in float32 or float64; kernels are
// written once as templates and instantiated for both through `dispatch`.
#pragma once

#include <cstddef>
#include <string_view>
#include <type_traits>

namespace tapegrad {

enum class DType { float32, float64 };

inline constexpr DType float32 = DType::float32;
inline constexpr DType float64 = DType::float64;

constexpr std::string_view name(DType dtype) {
    return dtype == DType::float32 ? "float32" : "float64";
}

constexpr std::size_t itemsize(DType dtype) { return dtype == DType::float32 ? 4 : 8; }

template <class T>
constexpr DType dtype_of() {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "tapegrad tensors hold float or double");
    return std::is_same_v<T, float> ? DType::float32 : DType::float64;
}

// Calls f.template operator()<T>() with T = float or double as `dtype` says:
//   dispatch(t.dtype(), [&]<class T>() { ... });
template <class F>
decltype(auto) dispatch(DType dtype, F&& f) {
    if (dtype == DType::float32) return f.template operator()<float>();
    return f.template operator()<double>();
}

}  // namespace tapegrad
