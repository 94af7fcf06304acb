// safetensors files and module checkpoints: round trips, atomic writes, and rejection of
// damaged or lying files with a message that says what is wrong.
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <tapegrad/tapegrad.hpp>

#include "tests/test_support.hpp"

using namespace tapegrad;
namespace fs = std::filesystem;

namespace {
std::string temp_path(const std::string& name) {
    return (tapegrad::test::scratch_dir("tests") / name).string();  // per process
}

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary) << bytes;
}

// A file with the given JSON header and `data_bytes` zero bytes of data.
void write_raw(const std::string& path, const std::string& header, std::size_t data_bytes) {
    std::string bytes(8, '\0');
    const std::uint64_t n = header.size();
    std::memcpy(bytes.data(), &n, 8);
    write_bytes(path, bytes + header + std::string(data_bytes, '\0'));
}

std::string load_error(const std::string& path) {
    try {
        load_safetensors(path);
    } catch (const IOError& e) {
        return e.what();
    }
    return "(loaded)";
}

struct Tiny : Module {
    Variable w, b;
    std::shared_ptr<Tiny> inner;
    explicit Tiny(Generator& g, bool nest = true) : Module("Tiny") {
        w = register_parameter("weight", g.normal({3, 2}, 0, 1, float32));
        b = register_parameter("bias", g.normal({2}, 0, 1, float32));
        if (nest) inner = register_module("inner", std::make_shared<Tiny>(g, false));
    }
};
}  // namespace

TEST_CASE("safetensors: float32 and float64 round trip with metadata") {
    const auto path = temp_path("roundtrip.safetensors");
    Generator g(1);
    Tensor a = g.normal({2, 3}, 0, 1, float32), b = g.normal({4}, 0, 1, float64);
    save_safetensors(path, {{"a", a}, {"b", b}}, {{"step", "12"}});
    TensorFile f = load_safetensors(path);
    REQUIRE(f.tensors.size() == 2);
    CHECK(f.tensors[0].first == "a");
    CHECK(f.find("a")->dtype() == float32);
    CHECK(max_abs_diff(*f.find("a"), a) == 0.0);
    CHECK(max_abs_diff(*f.find("b"), b) == 0.0);
    CHECK(f.metadata.at("step") == "12");
    // the header length is the first 8 bytes, little-endian, and the data is 8-byte aligned
    const std::string bytes = read_bytes(path);
    std::uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    CHECK(n % 8 == 0);
    CHECK(bytes.size() == 8 + n + 6 * 4 + 4 * 8);
}

TEST_CASE("safetensors: damaged and lying files are rejected with the reason") {
    const auto path = temp_path("bad.safetensors");
    const auto good = temp_path("good.safetensors");
    save_safetensors(good, {{"w", Tensor::ones({2, 2}, float32)}});
    const std::string bytes = read_bytes(good);

    write_bytes(path, bytes.substr(0, 5));
    CHECK(load_error(path).find("truncated") != std::string::npos);
    write_bytes(path, bytes.substr(0, bytes.size() - 3));
    CHECK(load_error(path).find("fall outside") != std::string::npos);

    std::string lying_length = bytes;
    const std::uint64_t huge = 1ull << 40;
    std::memcpy(lying_length.data(), &huge, 8);
    write_bytes(path, lying_length);
    CHECK(load_error(path).find("header length") != std::string::npos);

    write_raw(path, "{\"w\": {\"dtype\": \"F32\", \"shape\": [2,2], \"data_offsets\": [0, 16]", 16);
    CHECK(load_error(path).find("does not parse") != std::string::npos);
    write_raw(path, R"({"w": {"dtype": "I128", "shape": [2], "data_offsets": [0, 32]}})", 32);
    CHECK(load_error(path).find("dtype I128 is not a safetensors dtype") != std::string::npos);
    // I64 is one (tests/test_safetensors_dtypes.cpp reads them all)
    write_raw(path, R"({"w": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}})", 16);
    CHECK(load_safetensors(path).find("w")->to_vector() == std::vector<double>{0, 0});
    write_raw(path, R"({"w": {"dtype": "F32", "shape": [3,2], "data_offsets": [0, 16]}})", 16);
    CHECK(load_error(path).find("needs 24 bytes") != std::string::npos);
    write_raw(path, R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})", 16);
    CHECK(load_error(path).find("outside") != std::string::npos);
    write_raw(path, R"({"w": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}})", 16);
    CHECK(load_error(path).find("negative") != std::string::npos);
    write_raw(path, R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 24);
    CHECK(load_error(path).find("after the last tensor") != std::string::npos);
    write_raw(path, R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                        "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})",
              24);
    CHECK(load_error(path).find("overlaps") != std::string::npos);
    CHECK(load_error(temp_path("does_not_exist.safetensors")).find("cannot open") !=
          std::string::npos);
}

TEST_CASE("safetensors: a failed save leaves the previous file intact") {
    const auto path = temp_path("atomic.safetensors");
    save_safetensors(path, {{"w", Tensor::ones({3}, float64)}});
    const std::string before = read_bytes(path);
    CHECK_THROWS_AS(save_safetensors(path, {{"w", Tensor::ones({3}, float64)},
                                            {"w", Tensor::ones({1}, float64)}}),
                    IOError);
    CHECK(read_bytes(path) == before);
    CHECK_THROWS_AS(save_safetensors(temp_path("no_such_dir/x.safetensors"),
                                     {{"w", Tensor::ones({1}, float64)}}),
                    IOError);
    // no temporary files left behind
    for (const auto& entry : fs::directory_iterator(fs::path(path).parent_path()))
        CHECK(entry.path().string().find(".tmp.") == std::string::npos);
}

TEST_CASE("module: names, counts, train/eval, to(dtype), summary") {
    Generator g(2);
    Tiny m(g);
    auto named = m.named_parameters();
    REQUIRE(named.size() == 4);
    CHECK(named[0].first == "weight");
    CHECK(named[2].first == "inner.weight");
    CHECK(named[3].first == "inner.bias");
    CHECK(m.parameter_count() == 2 * (6 + 2));
    m.eval();
    CHECK_FALSE(m.inner->is_training());
    m.train();
    CHECK(m.inner->is_training());
    const Tensor w32 = m.w.value();
    m.to(float64);
    CHECK(m.w.dtype() == float64);  // the module's handle sees the change
    CHECK(m.inner->b.dtype() == float64);
    CHECK(max_abs_diff(m.w.value(), w32.to(float64)) == 0.0);
    const std::string s = m.summary();
    CHECK(s.find("Tiny (16 parameters)") != std::string::npos);
    CHECK(s.find("inner: Tiny (8 parameters)") != std::string::npos);
    CHECK(s.find("weight [3,2] float64") != std::string::npos);
}

TEST_CASE("module: the same seed gives the same model bit for bit") {
    Generator g1(9), g2(9);
    Tiny a(g1), b(g2);
    for (std::size_t i = 0; i < a.parameters().size(); ++i)
        CHECK(max_abs_diff(a.parameters()[i].value(), b.parameters()[i].value()) == 0.0);
}

TEST_CASE("module: checkpoints save and load; mismatches are reported exactly") {
    const auto path = temp_path("tiny.safetensors");
    Generator g(3);
    Tiny a(g), b(g);
    save(a, path);
    CHECK(load(b, path).ok());
    for (std::size_t i = 0; i < a.parameters().size(); ++i)
        CHECK(max_abs_diff(a.parameters()[i].value(), b.parameters()[i].value()) == 0.0);

    // a float64 model loads a float32 checkpoint (values converted)
    Tiny c(g);
    c.to(float64);
    CHECK(load(c, path).ok());
    CHECK(c.w.dtype() == float64);

    // a model without the inner module: unexpected entries
    Tiny flat(g, false);
    try {
        load(flat, path);
        FAIL("expected an IOError");
    } catch (const IOError& e) {
        CHECK(std::string(e.what()).find("unexpected: inner.weight, inner.bias") !=
              std::string::npos);
    }
    const Tensor kept = flat.w.value();
    auto report = load(flat, path, /*strict=*/false);
    CHECK(report.unexpected.size() == 2);
    CHECK(report.missing.empty());
    CHECK(max_abs_diff(flat.w.value(), a.w.value()) == 0.0);  // the intersection was loaded
    CHECK(max_abs_diff(kept, a.w.value()) > 0.0);

    // wrong shape and missing entries
    save_safetensors(
        path, {{"weight", Tensor::ones({2, 3}, float32)}, {"bias", Tensor::ones({2}, float32)}});
    Tiny d(g, false);
    report = load(d, path, false);
    REQUIRE(report.mismatched.size() == 1);
    CHECK(report.mismatched[0] == "weight: [2,3] in the source, [3,2] here");
    Tiny e(g);
    report = load(e, path, false);
    CHECK(report.missing == std::vector<std::string>{"inner.weight", "inner.bias"});
}
