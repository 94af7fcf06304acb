// Every dtype of the safetensors format: 16- and 8-bit floats widen to float32 exactly (every
// bit pattern is checked against the value the format's definition gives), integers and BOOL
// become int64 exactly, the rest is skipped per tensor; a file PyTorch wrote
// (tests/reference/dtype_fixture.safetensors, made by make_dtype_fixture.py) reads as PyTorch
// widened it; and module checkpoints holding integer buffers or F16/BF16 weights load.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include <unistd.h>

#include <tapegrad/tapegrad.hpp>
#include "tests/test_support.hpp"

using namespace tapegrad;
using tapegrad::test::scratch_dir;
namespace fs = std::filesystem;

namespace {

const std::string fixture_path =
    std::string(TAPEGRAD_SOURCE_DIR) + "/tests/reference/dtype_fixture.safetensors";

// One tensor of a hand-made file: its dtype string, shape and raw little-endian bytes.
struct Raw {
    std::string name, dtype;
    std::vector<std::size_t> shape;
    std::string bytes;
};

// A safetensors file of `tensors`, their data one after the other in the order given.
std::string file_of(const std::vector<Raw>& tensors) {
    std::string header = "{", data;
    for (const auto& t : tensors) {
        header +=
            fmt::format(R"({}"{}": {{"dtype": "{}", "shape": [{}], "data_offsets": [{}, {}]}})",
                        header.size() > 1 ? ", " : "", t.name, t.dtype, fmt::join(t.shape, ", "),
                        data.size(), data.size() + t.bytes.size());
        data += t.bytes;
    }
    header += "}";
    std::string bytes(8, '\0');
    const std::uint64_t n = header.size();
    std::memcpy(bytes.data(), &n, 8);
    return bytes + header + data;
}

template <class T>
std::string bytes_of(const std::vector<T>& values) {
    std::string out(values.size() * sizeof(T), '\0');
    if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
    return out;
}

TensorFile load_bytes(const std::string& bytes, const std::string& name = "file.safetensors") {
    const fs::path path = scratch_dir("dtypes") / name;
    std::ofstream(path, std::ios::binary) << bytes;
    return load_safetensors(path.string());
}

std::string load_error(const std::string& bytes) {
    try {
        load_bytes(bytes);
    } catch (const IOError& e) {
        return e.what();
    }
    return "(loaded)";
}

// Same value, with the sign of a zero; any NaN matches any NaN of the same sign.
bool same_value(double got, double want) {
    if (std::isnan(want)) return std::isnan(got) && std::signbit(got) == std::signbit(want);
    return got == want && std::signbit(got) == std::signbit(want);
}

// The value of a binary float with `exp_bits` and `man_bits`, as its definition reads:
// (-1)^s * 2^(e - bias) * 1.m, or 2^(1 - bias) * 0.m when e = 0. Infinity and NaN are the
// callers' to handle.
double minifloat(std::uint32_t bits, int exp_bits, int man_bits, int bias) {
    const std::uint32_t man = bits & ((1u << man_bits) - 1);
    const auto exp = static_cast<int>((bits >> man_bits) & ((1u << exp_bits) - 1));
    const bool negative = (bits >> (exp_bits + man_bits)) & 1;
    const double fraction = static_cast<double>(man) / static_cast<double>(1u << man_bits);
    const double mag =
        exp == 0 ? std::ldexp(fraction, 1 - bias) : std::ldexp(1.0 + fraction, exp - bias);
    return negative ? -mag : mag;
}

struct Net : Module {
    std::shared_ptr<Linear> fc;
    std::shared_ptr<LSTM> rnn;
    explicit Net(Generator& gen, DType dtype = float32) : Module("Net") {
        fc = register_module("fc", std::make_shared<Linear>(3, 2, gen));
        rnn = register_module("rnn", std::make_shared<LSTM>(2, 3, RecurrentOptions{}, gen));
        to(dtype);
    }
};

Tensor param(const Module& m, const std::string& name) {
    for (const auto& [n, p] : m.named_parameters())
        if (n == name) return p.value();
    FAIL("no parameter ", name);
    return {};
}

// The parameters' exact bytes, to see that a refused load changed nothing.
std::vector<std::string> snapshot(const Module& m) {
    std::vector<std::string> out;
    for (const auto& [name, t] : m.state_dict())
        dispatch(t.dtype(), [&]<class T>() {
            out.emplace_back(reinterpret_cast<const char*>(t.xt<T>().data()), t.nbytes());
        });
    return out;
}

}  // namespace

TEST_CASE("safetensors dtypes: every F16 and BF16 bit pattern widens to its exact float32") {
    std::vector<std::uint16_t> all(65536);
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::uint16_t>(i);
    const TensorFile f = load_bytes(
        file_of({{"h", "F16", {256, 256}, bytes_of(all)}, {"b", "BF16", {65536}, bytes_of(all)}}));
    const Tensor& h = *f.find("h");
    const Tensor& b = *f.find("b");
    REQUIRE(h.dtype() == float32);
    REQUIRE(h.shape() == Shape{256, 256});
    REQUIRE(b.dtype() == float32);
    CHECK(f.dtype("h") == "F16");
    CHECK(f.dtype("b") == "BF16");
    const float* hv = h.xt<float>().data();
    const float* bv = b.xt<float>().data();
    int wrong_h = 0, wrong_b = 0;
    for (std::uint32_t bits = 0; bits < 65536; ++bits) {
        const bool negative = bits & 0x8000;
        const double inf = negative ? -HUGE_VAL : HUGE_VAL;
        // F16: 5 exponent bits, bias 15; an all-ones exponent is infinity or NaN.
        double want = (bits & 0x7c00) == 0x7c00 ? ((bits & 0x3ff) ? std::copysign(NAN, inf) : inf)
                                                : minifloat(bits, 5, 10, 15);
        if (!same_value(hv[bits], want)) ++wrong_h;
        // A NaN keeps its payload: the half's 10 mantissa bits lead the float's 23.
        if (std::isnan(want) &&
            (std::bit_cast<std::uint32_t>(hv[bits]) & 0x7fffffu) != (bits & 0x3ffu) << 13)
            ++wrong_h;
        // BF16: 8 exponent bits, bias 127, 7 mantissa bits.
        want = (bits & 0x7f80) == 0x7f80 ? ((bits & 0x7f) ? std::copysign(NAN, inf) : inf)
                                         : minifloat(bits, 8, 7, 127);
        if (!same_value(bv[bits], want)) ++wrong_b;
        if (std::bit_cast<std::uint32_t>(bv[bits]) != bits << 16) ++wrong_b;
    }
    CHECK(wrong_h == 0);
    CHECK(wrong_b == 0);
    // Landmarks: the largest half, the smallest normal and subnormal ones.
    CHECK(hv[0x7bff] == 65504.0f);
    CHECK(hv[0x0400] == std::ldexp(1.0f, -14));
    CHECK(hv[0x0001] == std::ldexp(1.0f, -24));
    CHECK(hv[0x03ff] == std::ldexp(1023.0f, -24));
    CHECK(std::signbit(hv[0x8000]));
    CHECK(bv[0x3f80] == 1.0f);
    CHECK(bv[0x0001] == std::ldexp(1.0f, -133));
}

TEST_CASE("safetensors dtypes: the 8-bit floats widen exactly, all 256 patterns of each") {
    std::vector<std::uint8_t> all(256);
    for (std::size_t i = 0; i < 256; ++i) all[i] = static_cast<std::uint8_t>(i);
    const std::string bytes = bytes_of(all);
    const TensorFile f = load_bytes(file_of({{"e5m2", "F8_E5M2", {256}, bytes},
                                             {"e4m3", "F8_E4M3", {256}, bytes},
                                             {"e4m3fnuz", "F8_E4M3FNUZ", {16, 16}, bytes},
                                             {"e5m2fnuz", "F8_E5M2FNUZ", {256}, bytes},
                                             {"e8m0", "F8_E8M0", {256}, bytes}}));
    REQUIRE(f.tensors.size() == 5);
    auto values = [&](const char* name) {
        REQUIRE(f.find(name)->dtype() == float32);
        return f.find(name)->to_vector();
    };
    const auto e5m2 = values("e5m2"), e4m3 = values("e4m3"), e4m3fnuz = values("e4m3fnuz"),
               e5m2fnuz = values("e5m2fnuz"), e8m0 = values("e8m0");
    int wrong = 0;
    for (std::uint32_t b = 0; b < 256; ++b) {
        INFO("byte ", b);
        const double inf = b & 0x80 ? -HUGE_VAL : HUGE_VAL, nan = std::copysign(NAN, inf);
        // E5M2: IEEE-like, infinity and NaN at an all-ones exponent.
        double want = (b & 0x7c) == 0x7c ? ((b & 3) ? nan : inf) : minifloat(b, 5, 2, 15);
        wrong += !same_value(e5m2[b], want);
        // E4M3 (FN): no infinity; NaN only at S.1111.111.
        want = (b & 0x7f) == 0x7f ? nan : minifloat(b, 4, 3, 7);
        wrong += !same_value(e4m3[b], want);
        // FNUZ: bias one more, no infinity, no -0: 0x80 is the only NaN.
        want = b == 0x80 ? NAN : minifloat(b, 4, 3, 8);
        wrong += !(b == 0x80 ? std::isnan(e4m3fnuz[b]) : same_value(e4m3fnuz[b], want));
        want = b == 0x80 ? NAN : minifloat(b, 5, 2, 16);
        wrong += !(b == 0x80 ? std::isnan(e5m2fnuz[b]) : same_value(e5m2fnuz[b], want));
        // E8M0: 2^(b - 127); 0xff is NaN.
        wrong += !(b == 0xff ? std::isnan(e8m0[b]) : e8m0[b] == std::ldexp(1.0, int(b) - 127));
    }
    CHECK(wrong == 0);
    // Landmarks from the formats' specifications: largest and smallest magnitudes.
    CHECK(e4m3[0x7e] == 448.0);
    CHECK(e4m3[0x01] == std::ldexp(1.0, -9));
    CHECK(std::isnan(e4m3[0xff]));
    CHECK(e5m2[0x7b] == 57344.0);
    CHECK(e5m2[0x7c] == HUGE_VAL);
    CHECK(e5m2[0x01] == std::ldexp(1.0, -16));
    CHECK(e4m3fnuz[0x7f] == 240.0);
    CHECK(e4m3fnuz[0x01] == std::ldexp(1.0, -10));
    CHECK(e5m2fnuz[0x7f] == 57344.0);
    CHECK(e5m2fnuz[0x01] == std::ldexp(1.0, -17));
    CHECK(e8m0[0x7f] == 1.0);
    CHECK(e8m0[0x00] == std::ldexp(1.0, -127));
    CHECK(e8m0[0xfe] == std::ldexp(1.0, 127));
}

TEST_CASE("safetensors dtypes: integers and BOOL read as int64, exactly") {
    constexpr std::int64_t p53 = std::int64_t{1} << 53;
    const TensorFile f = load_bytes(file_of({
        {"bool", "BOOL", {2, 2}, bytes_of(std::vector<std::uint8_t>{0, 1, 1, 0})},
        {"u8", "U8", {3}, bytes_of(std::vector<std::uint8_t>{0, 128, 255})},
        {"i8", "I8", {3}, bytes_of(std::vector<std::int8_t>{-128, -1, 127})},
        {"u16", "U16", {2}, bytes_of(std::vector<std::uint16_t>{0, 65535})},
        {"i16", "I16", {2}, bytes_of(std::vector<std::int16_t>{-32768, 32767})},
        {"u32", "U32", {2}, bytes_of(std::vector<std::uint32_t>{0, 4294967295u})},
        {"i32", "I32", {2}, bytes_of(std::vector<std::int32_t>{INT32_MIN, INT32_MAX})},
        {"i64", "I64", {4}, bytes_of(std::vector<std::int64_t>{-p53, -1, 0, p53})},
        {"u64", "U64", {2}, bytes_of(std::vector<std::uint64_t>{0, std::uint64_t(p53)})},
        {"scalar", "I64", {}, bytes_of(std::vector<std::int64_t>{42})},
        {"empty", "I32", {0, 4}, ""},
        // beyond 2^53 but within int64: exact (a float64 would have rounded p53 + 1)
        {"i64_big", "I64", {3}, bytes_of(std::vector<std::int64_t>{1, 2, p53 + 1})},
        {"i64_low", "I64", {2}, bytes_of(std::vector<std::int64_t>{INT64_MIN, INT64_MAX})},
        // beyond int64: skipped, with the element that does not fit
        {"u64_big", "U64", {2}, bytes_of(std::vector<std::uint64_t>{1, UINT64_MAX})},
        {"bool_2", "BOOL", {3}, bytes_of(std::vector<std::uint8_t>{1, 0, 2})},
        {"w", "F32", {2}, bytes_of(std::vector<float>{1.5f, -2.0f})},
    }));
    const std::vector<std::pair<std::string, std::vector<std::int64_t>>> expected{
        {"bool", {0, 1, 1, 0}},
        {"u8", {0, 128, 255}},
        {"i8", {-128, -1, 127}},
        {"u16", {0, 65535}},
        {"i16", {-32768, 32767}},
        {"u32", {0, 4294967295}},
        {"i32", {INT32_MIN, INT32_MAX}},
        {"i64", {-p53, -1, 0, p53}},
        {"u64", {0, p53}},
        {"scalar", {42}},
        {"empty", {}},
        {"i64_big", {1, 2, p53 + 1}},
        {"i64_low", {INT64_MIN, INT64_MAX}}};
    REQUIRE(f.tensors.size() == expected.size() + 1);
    for (const auto& [name, values] : expected) {
        INFO(name);
        const Tensor* t = f.find(name);
        REQUIRE(t != nullptr);
        CHECK(t->dtype() == int64);
        CHECK(t->values<std::int64_t>() == values);
    }
    CHECK(f.find("w")->dtype() == float32);
    CHECK(f.find("w")->to_vector() == std::vector<double>{1.5, -2.0});
    CHECK(f.find("bool")->shape() == Shape{2, 2});
    CHECK(f.find("scalar")->dim() == 0);
    CHECK(f.find("empty")->shape() == Shape{0, 4});
    CHECK(f.dtype("bool") == "BOOL");
    CHECK(f.dtype("u64") == "U64");
    CHECK(f.dtype("w") == "F32");
    CHECK(f.dtype("nothing") == "");

    REQUIRE(f.skipped.size() == 2);
    CHECK(f.skipped[0].name == "u64_big");
    CHECK(f.skipped[0].dtype == "U64");
    CHECK(f.skipped[0].shape == Shape{2});
    CHECK(f.skipped[0].reason ==
          "element 1 is 18446744073709551615, beyond int64's largest value 2^63 - 1");
    CHECK(f.skipped[1].name == "bool_2");
    CHECK(f.skipped[1].reason == "element 2 is the byte 0x02, neither 0 (false) nor 1 (true)");
    CHECK(f.dtype("u64_big") == "U64");  // a skipped tensor still has its dtype
    CHECK(f.find("u64_big") == nullptr);
}

TEST_CASE("safetensors dtypes: packed and complex tensors are checked, then skipped") {
    const TensorFile f = load_bytes(file_of({{"f4", "F4", {2, 2}, std::string(2, '\x21')},
                                             {"f6a", "F6_E2M3", {4}, std::string(3, '\x01')},
                                             {"f6b", "F6_E3M2", {8}, std::string(6, '\x01')},
                                             {"c", "C64", {2}, std::string(16, '\0')},
                                             {"w", "F64", {1}, bytes_of(std::vector{0.25})}}));
    REQUIRE(f.tensors.size() == 1);
    CHECK(f.find("w")->item() == 0.25);
    REQUIRE(f.skipped.size() == 4);
    CHECK(f.skipped[0].name == "f4");
    CHECK(f.skipped[0].shape == Shape{2, 2});
    CHECK(f.skipped[0].reason.find("packed 4-bit floats") != std::string::npos);
    CHECK(f.skipped[1].reason.find("packed 6-bit floats") != std::string::npos);
    CHECK(f.skipped[3].reason.find("complex") != std::string::npos);
    // Their sizes are checked as any other's.
    CHECK(load_error(file_of({{"f4", "F4", {3}, std::string(2, '\0')}}))
              .find("tensor 'f4': shape [3] of F4 is 12 bits, not a whole number of bytes") !=
          std::string::npos);
    CHECK(load_error(file_of({{"f6", "F6_E3M2", {4}, std::string(4, '\0')}}))
              .find("shape [4] of F6_E3M2 needs 3 bytes, data_offsets give 4") !=
          std::string::npos);
    CHECK(load_error(file_of({{"c", "C64", {1}, std::string(4, '\0')}}))
              .find("shape [1] of C64 needs 8 bytes, data_offsets give 4") != std::string::npos);
    CHECK(load_error(file_of({{"h", "F16", {3}, std::string(4, '\0')}}))
              .find("shape [3] of F16 needs 6 bytes, data_offsets give 4") != std::string::npos);
    // A dtype the format does not have is an error: its size is unknown.
    const std::string unknown = load_error(file_of({{"x", "F12", {1}, std::string(2, '\0')}}));
    CHECK(unknown.find("tensor 'x': dtype F12 is not a safetensors dtype (those are BOOL, F4,") !=
          std::string::npos);
    CHECK(!is_floating_dtype("F4"));
    CHECK(!is_floating_dtype("I64"));
    CHECK(!is_floating_dtype("BOOL"));
    CHECK(is_floating_dtype("BF16"));
    CHECK(is_floating_dtype("F8_E4M3"));
}

TEST_CASE("safetensors dtypes: the writer writes F32, F64 and I64, which read back bit for bit") {
    // A widened F16 tensor is saved as the float32 it now is, an I32 one as int64.
    const TensorFile f = load_bytes(
        file_of({{"h", "F16", {3}, bytes_of(std::vector<std::uint16_t>{0x3c00, 0x0001, 0xfc00})},
                 {"n", "I32", {2}, bytes_of(std::vector<std::int32_t>{-7, 1 << 20})},
                 {"f", "F64", {1}, bytes_of(std::vector<double>{0.1})}}));
    const fs::path path = scratch_dir("dtypes") / "written.safetensors";
    save_safetensors(path.string(), f.tensors);
    const TensorFile back = load_safetensors(path.string());
    CHECK(back.dtype("h") == "F32");
    CHECK(back.dtype("n") == "I64");
    CHECK(back.dtype("f") == "F64");
    for (const auto& [name, t] : f.tensors) {
        const Tensor* b = back.find(name);
        REQUIRE(b != nullptr);
        REQUIRE(b->dtype() == t.dtype());
        CHECK(dispatch_any(t.dtype(), [&]<class T>() {
            return std::memcmp(b->xt<T>().data(), t.xt<T>().data(), t.nbytes()) == 0;
        }));
    }
    fs::remove_all(scratch_dir("dtypes"));
}

TEST_CASE("safetensors dtypes: a file PyTorch wrote reads as PyTorch widens it") {
    const TensorFile f = load_safetensors(fixture_path);
    CHECK(f.metadata.at("writer") == "make_dtype_fixture.py");
    // Every dtype the fixture's model and buffers were stored in.
    const std::map<std::string, std::string> dtypes{{"fc.weight", "F16"},
                                                    {"fc.bias", "F32"},
                                                    {"rnn.weight_ih_l0", "BF16"},
                                                    {"rnn.weight_hh_l0", "BF16"},
                                                    {"rnn.bias_ih_l0", "F16"},
                                                    {"rnn.bias_hh_l0", "F32"},
                                                    {"num_batches_tracked", "I64"},
                                                    {"lengths", "I64"},
                                                    {"mask", "BOOL"},
                                                    {"specials.f16", "F16"},
                                                    {"specials.bf16", "BF16"},
                                                    {"ints.u8", "U8"},
                                                    {"ints.i8", "I8"},
                                                    {"ints.i16", "I16"},
                                                    {"ints.i32", "I32"},
                                                    {"ints.i64", "I64"},
                                                    {"ints.i64_beyond_2_53", "I64"}};
    for (const auto& [name, dtype] : dtypes) CHECK(f.dtype(name) == dtype);
    // Each tensor against its F64 copy, as PyTorch's tensor.double() made it.
    int compared = 0;
    for (const auto& [name, t] : f.tensors) {
        if (name.rfind("expected.", 0) == 0 || name == "ints.i64_beyond_2_53") continue;
        INFO(name);
        const Tensor* want = f.find("expected." + name);
        REQUIRE(want != nullptr);
        REQUIRE(t.shape() == want->shape());
        const std::string file_dtype = f.dtype(name);
        CHECK(t.dtype() == (!is_floating_dtype(file_dtype) ? int64
                            : file_dtype == "F64"          ? float64
                                                           : float32));
        const auto got = t.to_vector(), expected = want->to_vector();
        for (std::size_t i = 0; i < got.size(); ++i) {
            INFO("element ", i, ": ", got[i], " vs ", expected[i]);
            CHECK(same_value(got[i], expected[i]));
        }
        ++compared;
    }
    CHECK(compared == 16);
    // The special values came through: subnormals, infinities, NaN, -0.
    const auto f16 = f.find("specials.f16")->to_vector();
    CHECK(std::signbit(f16[1]));
    CHECK(f16[7] == std::ldexp(1.0, -24));
    CHECK(f16[10] == HUGE_VAL);
    CHECK(std::isnan(f16[12]));
    const auto bf16 = f.find("specials.bf16")->to_vector();
    CHECK(bf16[6] == std::ldexp(1.0, -133));
    CHECK(f.find("num_batches_tracked")->item() == 1234.0);
    CHECK(f.find("lengths")->to_vector() == std::vector<double>{5, 2, 4});
    CHECK(f.find("mask")->shape() == Shape{3, 5});
    // The one tensor a float64 could not hold is exact as int64.
    CHECK(f.find("ints.i64_beyond_2_53")->values<std::int64_t>() ==
          std::vector<std::int64_t>{7, (std::int64_t{1} << 53) + 1, INT64_MIN});
    CHECK(f.skipped.empty());
}

TEST_CASE("checkpoint: a PyTorch state with F16/BF16 weights and integer buffers loads") {
    for (const DType dtype : {float32, float64}) {
        INFO(tapegrad::name(dtype));
        Generator gen(4);
        Net net(gen, dtype);
        const TensorFile f = load_safetensors(fixture_path);

        // Strict: the buffers are not parameters of this model; nothing loads.
        const auto before = snapshot(net);
        try {
            load(net, fixture_path, true);
            FAIL("expected an IOError");
        } catch (const IOError& e) {
            const std::string what = e.what();
            CHECK(what.find("checkpoint '" + fixture_path + "' does not fit Net") == 0);
            CHECK(what.find("unexpected: ") != std::string::npos);
            for (const char* name : {"num_batches_tracked", "lengths", "mask",
                                     "ints.i64_beyond_2_53", "expected.fc.weight"})
                CHECK(what.find(name) != std::string::npos);
            CHECK(what.find("missing") == std::string::npos);
        }
        CHECK(snapshot(net) == before);

        // Not strict: every parameter loads, widened and converted to the parameter's dtype.
        const Module::LoadReport report = load(net, fixture_path, false);
        CHECK(report.missing.empty());
        CHECK(report.mismatched.empty());
        std::vector<std::string> unexpected = report.unexpected;
        std::sort(unexpected.begin(), unexpected.end());
        std::vector<std::string> want;
        for (const auto& [n, t] : f.tensors)
            if (n.rfind("fc.", 0) != 0 && n.rfind("rnn.", 0) != 0) want.push_back(n);
        std::sort(want.begin(), want.end());
        CHECK(unexpected == want);
        for (const auto& [n, p] : net.named_parameters()) {
            INFO(n);
            CHECK(p.dtype() == dtype);
            const Tensor* expected = f.find("expected." + n);
            REQUIRE(expected != nullptr);
            // float32 holds every F16 and BF16 value, so both dtypes load them exactly.
            CHECK(max_abs_diff(p.value(), expected->to(dtype)) == 0.0);
        }
        CHECK(snapshot(net) != before);
    }
}

TEST_CASE("checkpoint: an integer tensor under a parameter's name does not load into it") {
    const fs::path path = scratch_dir("dtypes") / "int_param.safetensors";
    Generator gen(5);
    Net source(gen), net(gen);
    auto state = source.state_dict();
    std::vector<Raw> raw;
    for (const auto& [n, t] : state)
        if (n != "fc.bias")
            raw.push_back(
                {n, "F32", std::vector<std::size_t>(t.shape().begin(), t.shape().end()),
                 std::string(reinterpret_cast<const char*>(t.xt<float>().data()), t.nbytes())});
    raw.push_back({"fc.bias", "I64", {2}, bytes_of(std::vector<std::int64_t>{1, 2})});
    raw.push_back({"num_batches_tracked", "I64", {}, bytes_of(std::vector<std::int64_t>{3})});
    std::ofstream(path, std::ios::binary) << file_of(raw);

    const auto before = snapshot(net);
    try {
        load(net, path.string(), true);
        FAIL("expected an IOError");
    } catch (const IOError& e) {
        const std::string what = e.what();
        CHECK(what.find("unexpected: num_batches_tracked") != std::string::npos);
        CHECK(what.find("mismatched: fc.bias: I64 in the source, a float32 parameter here") !=
              std::string::npos);
    }
    CHECK(snapshot(net) == before);

    const Tensor bias = param(net, "fc.bias");
    const auto report = load(net, path.string(), false);
    CHECK(report.unexpected == std::vector<std::string>{"num_batches_tracked"});
    REQUIRE(report.mismatched.size() == 1);
    CHECK(report.mismatched[0] == "fc.bias: I64 in the source, a float32 parameter here");
    CHECK(report.missing.empty());
    // The rest loaded; the bias kept its value.
    CHECK(max_abs_diff(param(net, "fc.bias"), bias) == 0.0);
    for (const auto& [n, t] : state)
        if (n != "fc.bias") CHECK(max_abs_diff(param(net, n), t) == 0.0);

    // A tensor the reader skipped, under a parameter's name, says why it was skipped.
    raw[raw.size() - 2] = {"fc.bias", "U64", {2}, bytes_of(std::vector<std::uint64_t>{0, ~0ull})};
    std::ofstream(path, std::ios::binary) << file_of(raw);
    CHECK(load(net, path.string(), false).mismatched ==
          std::vector<std::string>{
              "fc.bias: U64 in the source (element 1 is 18446744073709551615, beyond int64's "
              "largest value 2^63 - 1), a float32 parameter here"});
    fs::remove_all(scratch_dir("dtypes"));
}
