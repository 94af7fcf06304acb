// Checkpoints under failure: a process killed with SIGKILL while saving leaves the previous
// file intact, and damaged or lying files are rejected with an IOError that says what is
// wrong (the cases tests/test_checkpoint.cpp does not already cover).
#include <doctest/doctest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tapegrad/tapegrad.hpp>
#include "tests/test_support.hpp"

using namespace tapegrad;
using tapegrad::test::scratch_dir;
namespace fs = std::filesystem;

namespace {

std::string read_bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

// Removed first, not truncated: ext4 flushes a file truncated and rewritten on close, which
// makes a thousand small rewrites take seconds.
void write_bytes(const fs::path& path, const std::string& bytes) {
    fs::remove(path);
    std::ofstream(path, std::ios::binary) << bytes;
}

// 8-byte little-endian length + header + data.
std::string file_bytes(const std::string& header, const std::string& data) {
    std::string bytes(8, '\0');
    const std::uint64_t n = header.size();
    std::memcpy(bytes.data(), &n, 8);
    return bytes + header + data;
}

// The same bytes with another header length.
std::string with_length(std::string bytes, std::uint64_t n) {
    std::memcpy(bytes.data(), &n, 8);
    return bytes;
}

// "IOError: <message>", "loaded", or the type of anything else that was thrown.
std::string load_outcome(const fs::path& path) {
    try {
        load_safetensors(path.string());
    } catch (const IOError& e) {
        return std::string("IOError: ") + e.what();
    } catch (const std::exception& e) {
        return std::string("not an IOError: ") + e.what();
    }
    return "loaded";
}

// Checkpoint number `version`: three float64 tensors (about 2 MB in all) whose every element
// encodes the version and its own position, so a mix of two versions or a shifted byte shows.
std::vector<std::pair<std::string, Tensor>> versioned(int version) {
    std::vector<std::pair<std::string, Tensor>> out;
    const std::vector<std::pair<std::string, Shape>> layout{
        {"encoder.weight", {256, 512}}, {"encoder.bias", {512}}, {"decoder.weight", {512, 256}}};
    for (const auto& [name, shape] : layout) {
        std::vector<double> values(numel(shape));
        for (std::size_t i = 0; i < values.size(); ++i)
            values[i] = version * 1e7 + static_cast<double>(i);
        out.emplace_back(name, Tensor::from(values, shape, float64));
    }
    return out;
}

// The version the file at `path` holds, after checking that every element agrees with it.
int check_versioned(const fs::path& path) {
    const TensorFile f = load_safetensors(path.string());
    REQUIRE(f.tensors.size() == 3);
    const int version = std::stoi(f.metadata.at("version"));
    const auto expected = versioned(version);
    for (const auto& [name, t] : expected) {
        const Tensor* got = f.find(name);
        REQUIRE(got != nullptr);
        REQUIRE(got->shape() == t.shape());
        CHECK(max_abs_diff(*got, t) == 0.0);
    }
    return version;
}

}  // namespace

TEST_CASE("safetensors: SIGKILL in the middle of a save leaves the previous checkpoint intact") {
    const fs::path dir = scratch_dir("crash");
    const fs::path path = dir / "model.safetensors";
    save_safetensors(path.string(), versioned(0), {{"version", "0"}});

    // How long one save takes here, to spread the kills over it.
    const auto t0 = std::chrono::steady_clock::now();
    save_safetensors(path.string(), versioned(0), {{"version", "0"}});
    const auto save_us = std::max<long>(200, std::chrono::duration_cast<std::chrono::microseconds>(
                                                 std::chrono::steady_clock::now() - t0)
                                                 .count());

    // Each round the child saves version `round` over and over until killed. The parent
    // kills it after a random delay of up to 3 saves; in odd rounds it first waits for the
    // child's temporary file to appear, so those kills land before a rename. The file must
    // then hold version round - 1 (no rename happened yet) or round, complete either way.
    constexpr int rounds = 12;
    int mid_save = 0;  // kills that found the child's temporary file, i.e. a save in flight
    Generator gen(2024);
    const auto payloads = [] {
        std::vector<std::vector<std::pair<std::string, Tensor>>> p;
        for (int r = 0; r <= rounds; ++r) p.push_back(versioned(r));
        return p;
    }();
    int last = 0;
    for (int round = 1; round <= rounds; ++round) {
        int ready[2];
        REQUIRE(::pipe(ready) == 0);
        const pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            ::close(ready[0]);
            const char go = 'g';
            if (::write(ready[1], &go, 1) != 1) ::_exit(3);
            // Bounded, in case the parent dies: a few seconds of saves at most.
            for (int i = 0; i < 2000; ++i) {
                try {
                    save_safetensors(path.string(), payloads[round],
                                     {{"version", std::to_string(round)}});
                } catch (...) {
                    ::_exit(2);
                }
            }
            ::_exit(0);
        }
        ::close(ready[1]);
        char go = 0;
        REQUIRE(::read(ready[0], &go, 1) == 1);
        ::close(ready[0]);
        const fs::path tmp = fmt::format("{}.tmp.{}", path.string(), child);
        auto delay = std::chrono::microseconds(gen.below(3 * static_cast<std::uint64_t>(save_us)));
        if (round % 2 == 1) {
            const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(2);
            while (!fs::exists(tmp) && std::chrono::steady_clock::now() < give_up)
                std::this_thread::sleep_for(std::chrono::microseconds(50));
            delay /= 6;  // within the first half of a save
        }
        std::this_thread::sleep_for(delay);
        REQUIRE(::kill(child, SIGKILL) == 0);
        int status = 0;
        REQUIRE(::waitpid(child, &status, 0) == child);
        INFO("round ", round, ", child status ", status);
        CHECK(WIFSIGNALED(status));
        CHECK(WTERMSIG(status) == SIGKILL);

        // The child's temporary file, if the kill caught a save in flight, is beside the
        // target under its own name; the target itself is a whole checkpoint.
        if (fs::exists(tmp)) {
            ++mid_save;
            fs::remove(tmp);
        }
        const int version = check_versioned(path);
        CHECK((version == last || version == round));
        last = version;
        // Nothing else is left in the folder.
        for (const auto& entry : fs::directory_iterator(dir)) CHECK(entry.path() == path);
    }
    // The kills must have hit saves in progress, or this test shows nothing.
    CHECK(mid_save >= rounds / 4);
    MESSAGE("kills during a save: ", mid_save, " of ", rounds, " (one save takes ~", save_us,
            " us)");
    fs::remove_all(dir);
}

TEST_CASE("safetensors: every truncation of a checkpoint is rejected") {
    // Three checkpoints save() wrote (small; medium; float32 and float64 mixed), and a file
    // PyTorch wrote with F16, BF16, integer and BOOL tensors: each cut to every shorter length
    // must give an IOError that names the file and the part that is missing.
    const fs::path dir = scratch_dir("crash");
    const fs::path bad = dir / "cut.safetensors";
    Generator gen(30);
    struct Small : Module {
        explicit Small(Generator& g) : Module("Small") {
            register_module("fc", std::make_shared<Linear>(3, 2, g));
        }
    };
    struct Medium : Module {
        std::shared_ptr<Linear> head;
        explicit Medium(Generator& g) : Module("Medium") {
            register_module("rnn", std::make_shared<LSTM>(8, 16, RecurrentOptions{}, g));
            head = register_module("head", std::make_shared<Linear>(16, 4, g));
        }
    };
    Small small(gen);
    Medium medium(gen), mixed(gen);
    mixed.head->to(float64);                                 // the LSTM stays float32
    std::vector<std::pair<std::string, std::string>> files;  // name, bytes
    for (const auto& [name, m] : std::vector<std::pair<std::string, const Module*>>{
             {"small", &small}, {"medium", &medium}, {"mixed", &mixed}}) {
        const fs::path path = dir / (name + ".safetensors");
        save(*m, path.string());
        files.emplace_back(name, read_bytes(path));
    }
    CHECK(load_safetensors((dir / "mixed.safetensors").string()).dtype("head.weight") == "F64");
    CHECK(load_safetensors((dir / "mixed.safetensors").string()).dtype("rnn.weight_ih_l0") ==
          "F32");
    files.emplace_back("dtype fixture", read_bytes(fs::path(TAPEGRAD_SOURCE_DIR) /
                                                   "tests/reference/dtype_fixture.safetensors"));
    CHECK(files[1].second.size() > 6000);  // medium: LSTM(8, 16) and Linear(16, 4) in float32

    for (const auto& [name, bytes] : files) {
        REQUIRE(bytes.size() > 8);
        write_bytes(bad, bytes);
        REQUIRE(load_outcome(bad) == "loaded");  // whole, it loads
        std::uint64_t n = 0;
        std::memcpy(&n, bytes.data(), 8);
        int wrong = 0;
        for (std::size_t size = 0; size < bytes.size(); ++size) {
            write_bytes(bad, bytes.substr(0, size));
            const std::string outcome = load_outcome(bad);
            const char* part = size < 8       ? "truncated"
                               : size < 8 + n ? "does not fit in the file"
                                              : "fall outside the";
            if (outcome.rfind("IOError: safetensors '" + bad.string() + "': ", 0) == 0 &&
                outcome.find(part) != std::string::npos)
                continue;
            if (++wrong <= 3) {  // the first few, not thousands
                INFO(name, " cut to ", size, " of ", bytes.size(), " bytes: ", outcome);
                CHECK(outcome.find(part) != std::string::npos);
            }
        }
        INFO(name, ": ", bytes.size(), " truncations");
        CHECK(wrong == 0);
    }
    fs::remove_all(dir);
}

TEST_CASE("safetensors: a flipped bit in the header is rejected or harmless") {
    // The format has no checksum, so a flip in the data bytes cannot be seen; in the header
    // every flip must either be rejected with an IOError, or (a flip inside a tensor name or
    // the padding) load the same shapes and values. A flip must never load wrong numbers.
    const fs::path dir = scratch_dir("crash");
    const fs::path good = dir / "good.safetensors", bad = dir / "flipped.safetensors";
    const Tensor w = Tensor::from({1, 2, 3, 4, 5, 6}, {2, 3}, float32);
    const Tensor b = Tensor::from({7, 8}, {2}, float64);
    save_safetensors(good.string(), {{"w", w}, {"b", b}});
    const std::string bytes = read_bytes(good);
    std::uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    int rejected = 0, harmless = 0;
    for (std::size_t pos = 0; pos < 8 + n; ++pos) {
        for (int bit = 0; bit < 8; ++bit) {
            std::string flipped = bytes;
            flipped[pos] = static_cast<char>(flipped[pos] ^ (1 << bit));
            write_bytes(bad, flipped);
            INFO("byte ", pos, " bit ", bit);
            TensorFile f;
            try {
                f = load_safetensors(bad.string());
            } catch (const IOError& e) {
                CHECK(std::string(e.what()).rfind("safetensors '" + bad.string() + "': ", 0) == 0);
                ++rejected;
                continue;
            }
            CHECK(pos >= 8);  // every flip of the length field is rejected
            REQUIRE(f.tensors.size() == 2);
            const Tensor& got_w = f.tensors[0].second;  // in data order: w, then b
            const Tensor& got_b = f.tensors[1].second;
            REQUIRE(got_w.shape() == w.shape());
            REQUIRE(got_w.dtype() == w.dtype());
            CHECK(max_abs_diff(got_w, w) == 0.0);
            REQUIRE(got_b.shape() == b.shape());
            REQUIRE(got_b.dtype() == b.dtype());
            CHECK(max_abs_diff(got_b, b) == 0.0);
            ++harmless;
        }
    }
    MESSAGE("header bit flips: ", rejected, " rejected, ", harmless,
            " harmless (a name or padding)");
    CHECK(rejected > 4 * harmless);
    fs::remove_all(dir);
}

TEST_CASE("safetensors: lying headers are rejected with the reason") {
    const fs::path dir = scratch_dir("crash");
    const fs::path path = dir / "lying.safetensors";
    const std::string data16(16, '\0');
    const std::string w4 = R"("w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]})";
    // Each case: the file's bytes and a piece of the message that says what is wrong.
    const std::vector<std::pair<std::string, std::string>> cases{
        // header length
        {with_length(file_bytes("{" + w4 + "}", data16), 0), "does not parse"},
        // the header is 62 bytes, the file 86
        {with_length(file_bytes("{" + w4 + "}", data16), 79),
         "header length 79 does not fit in the file (86 bytes)"},
        {with_length(file_bytes("{" + w4 + "}", data16), 61), "does not parse"},
        // a length that takes in 8 data bytes (zeros): the header holds a NUL byte
        {with_length(file_bytes("{" + w4 + "}", data16), 70),
         "the JSON header holds a NUL byte at offset 62 of 70"},
        {with_length(file_bytes("{" + w4 + "}", data16), std::uint64_t{1} << 63),
         "header length 9223372036854775808 does not fit in the file (86 bytes)"},
        // JSON
        {file_bytes("[1, 2]", ""), "the JSON header is not an object"},
        {file_bytes(R"({"w": [0, 16]})", data16), "tensor 'w': entry is not an object"},
        {file_bytes(R"({"w": {"shape": [4], "data_offsets": [0, 16]}})", data16),
         "tensor 'w': missing dtype"},
        {file_bytes(R"({"w": {"dtype": "F32", "data_offsets": [0, 16]}})", data16),
         "tensor 'w': missing shape"},
        {file_bytes(R"({"w": {"dtype": "F32", "shape": [4]}})", data16),
         "tensor 'w': data_offsets must be two non-negative integers"},
        {file_bytes(R"({"__metadata__": {"step": 3}, )" + w4 + "}", data16),
         "__metadata__ value 'step' is not a string"},
        {file_bytes(R"({"__metadata__": ["x"], )" + w4 + "}", data16),
         "__metadata__ is not an object"},
        {file_bytes("{\"w\xff\": {}}", ""), "does not parse"},  // not UTF-8
        // offsets
        {file_bytes(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16, 32]}})",
                    data16),
         "data_offsets must be two non-negative integers"},
        {file_bytes(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [-16, 0]}})", data16),
         "data_offsets must be two non-negative integers"},
        {file_bytes(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": ["0", "16"]}})",
                    data16),
         "data_offsets must be two non-negative integers"},
        {file_bytes(R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [16, 0]}})", data16),
         "tensor 'w': data_offsets [16, 0] end before they begin"},
        {file_bytes(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})", data16),
         "8 unused data bytes before tensor 'w'"},
        // a repeated name: JSON keeps the last entry, so the first one's bytes are unaccounted for
        {file_bytes(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                        "w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})",
                    data16),
         "8 unused data bytes before tensor 'w'"},
        // dtype
        {file_bytes(R"({"w": {"dtype": "f32", "shape": [4], "data_offsets": [0, 16]}})", data16),
         "tensor 'w': dtype f32 is not a safetensors dtype (those are BOOL, F4, "},
        {file_bytes(R"({"w": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 16]}})", data16),
         "tensor 'w': shape [4] of BF16 needs 8 bytes, data_offsets give 16"},
        {file_bytes(R"({"w": {"dtype": "I64", "shape": [4], "data_offsets": [0, 16]}})", data16),
         "tensor 'w': shape [4] of I64 needs 32 bytes, data_offsets give 16"},
        {file_bytes(R"({"w": {"dtype": "F4", "shape": [5], "data_offsets": [0, 16]}})", data16),
         "tensor 'w': shape [5] of F4 is 20 bits, not a whole number of bytes"},
        {file_bytes(R"({"w": {"dtype": 32, "shape": [4], "data_offsets": [0, 16]}})", data16),
         "tensor 'w': dtype 32 is not a string"},
        // a NUL byte inside the header (here after a complete object, which a parse stopping
        // at the NUL would accept)
        {file_bytes("{" + w4 + "}" + std::string(1, '\0') + "xx", data16),
         "the JSON header holds a NUL byte at offset 62 of 65"},
        {file_bytes(R"({"w": {"dtype": "F64", "shape": [4], "data_offsets": [0, 16]}})", data16),
         "shape [4] of F64 needs 32 bytes, data_offsets give 16"},
        // shape
        {file_bytes(R"({"w": {"dtype": "F32", "shape": 4, "data_offsets": [0, 16]}})", data16),
         "tensor 'w': missing shape"},
        {file_bytes(R"({"w": {"dtype": "F32", "shape": [2.0, 2], "data_offsets": [0, 16]}})",
                    data16),
         "shape [2.0,2] holds a non-integer or negative size"},
        {file_bytes(
             R"({"w": {"dtype": "F32", "shape": [1099511627776, 1099511627776], "data_offsets": [0, 16]}})",
             data16),
         "shape [1099511627776,1099511627776] is too large"},
        {file_bytes(R"({"w": {"dtype": "F32", "shape": [2, 4], "data_offsets": [0, 16]}})", data16),
         "shape [2,4] of F32 needs 32 bytes, data_offsets give 16"},
        // total size
        {file_bytes("{" + w4 + "}", data16 + std::string(4, '\0')),
         "4 data bytes after the last tensor"},
        {file_bytes("{" + w4 + "}", data16.substr(0, 15)),
         "data_offsets [0, 16] fall outside the 15 data bytes"},
        {file_bytes("{}", std::string(8, '\0')), "8 data bytes after the last tensor"},
    };
    for (const auto& [bytes, reason] : cases) {
        write_bytes(path, bytes);
        const std::string outcome = load_outcome(path);
        INFO("header: ", bytes.size() > 8 ? bytes.substr(8, 120) : std::string("(none)"));
        INFO("outcome: ", outcome);
        CHECK(outcome.rfind("IOError: safetensors '" + path.string() + "': ", 0) == 0);
        CHECK(outcome.find(reason) != std::string::npos);
    }

    // The edge cases that are valid load: a 0-d tensor, an empty tensor, no tensors at all.
    write_bytes(path, file_bytes(R"({"s": {"dtype": "F64", "shape": [], "data_offsets": [0, 8]},
                                     "e": {"dtype": "F32", "shape": [0, 3], "data_offsets": [8, 8]}})",
                                 std::string("\0\0\0\0\0\0\xf0\x3f", 8)));
    const TensorFile f = load_safetensors(path.string());
    REQUIRE(f.tensors.size() == 2);
    CHECK(f.find("s")->dim() == 0);
    CHECK(f.find("s")->item() == 1.0);
    CHECK(f.find("e")->shape() == Shape{0, 3});
    write_bytes(path, file_bytes("{}", ""));
    CHECK(load_safetensors(path.string()).tensors.empty());

    // A folder is not a file.
    CHECK(load_outcome(dir).rfind("IOError: safetensors '", 0) == 0);
    fs::remove_all(dir);
}
