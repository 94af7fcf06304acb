// fuzz/safetensors_loader: the input's bytes, written to a file, go to load_safetensors and
// to load(module). Every input must give loaded tensors or an IOError; any other exception, a
// crash, a hang or a sanitizer report is a finding. So is a loaded file that does not
// survive a round trip: saved again and reloaded, it must give the same names, shapes,
// dtypes, bytes and metadata.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include <tapegrad/tapegrad.hpp>

using namespace tapegrad;

namespace {

[[noreturn]] void finding(const std::string& what) {
    std::fprintf(stderr, "fuzz/safetensors_loader: %s\n", what.c_str());
    std::fflush(stderr);
    __builtin_trap();
}

// A file of this process's own, in memory when /dev/shm exists (each input is written and
// saved again: on a disk, fsync would dominate the run), removed at exit.
struct Scratch {
    std::string path;
    explicit Scratch(const char* name) {
        const char* tmp = std::getenv("TMPDIR");
        const std::string dir = std::filesystem::is_directory("/dev/shm") ? "/dev/shm"
                                : tmp && *tmp                             ? tmp
                                                                          : "/tmp";
        path = dir + "/tapegrad_fuzz_" + std::to_string(::getpid()) + "_" + name;
    }
    ~Scratch() { std::remove(path.c_str()); }
};

// The module the files are loaded into: the names of the seed corpus's module files.
struct Net : Module {
    std::shared_ptr<Linear> fc;
    std::shared_ptr<LSTM> rnn;
    explicit Net(Generator& gen) : Module("Net") {
        fc = register_module("fc", std::make_shared<Linear>(3, 2, gen));
        rnn = register_module("rnn", std::make_shared<LSTM>(2, 3, RecurrentOptions{}, gen));
    }
};

bool same_bytes(const Tensor& a, const Tensor& b) {
    if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
    return dispatch_any(a.dtype(), [&]<class T>() {
        return a.nbytes() == 0 || std::memcmp(a.xt<T>().data(), b.xt<T>().data(), a.nbytes()) == 0;
    });
}

void round_trip(const TensorFile& f, const std::string& path) {
    for (const auto& [name, t] : f.tensors)
        if (t.nbytes() != numel(t.shape()) * itemsize(t.dtype()))
            finding("tensor '" + name + "': nbytes does not match its shape");
    try {
        save_safetensors(path, f.tensors, f.metadata);
    } catch (const IOError&) {
        return;  // names the writer refuses (empty, "__metadata__") are read but not written
    }
    TensorFile back;
    try {
        back = load_safetensors(path);
    } catch (const IOError& e) {
        finding(std::string("round trip: a file the writer made does not load: ") + e.what());
    }
    if (back.tensors.size() != f.tensors.size()) finding("round trip: the tensor count changed");
    for (std::size_t i = 0; i < f.tensors.size(); ++i) {
        if (back.tensors[i].first != f.tensors[i].first)
            finding("round trip: tensor names or order changed");
        if (!same_bytes(back.tensors[i].second, f.tensors[i].second))
            finding("round trip: tensor '" + f.tensors[i].first + "' changed");
    }
    if (back.metadata != f.metadata) finding("round trip: the metadata changed");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const Scratch input_file("input.safetensors"), copy_file("copy.safetensors");
    const std::string& input = input_file.path;
    const std::string& copy = copy_file.path;
    static Generator gen(1);
    static Net net(gen);
    {
        std::ofstream out(input, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
        if (!out) finding("cannot write " + input);
    }
    try {
        round_trip(load_safetensors(input), copy);
    } catch (const IOError&) {}
    // Strict loading throws on any mismatch; the lenient one loads the intersection.
    try {
        load(net, input, true);
    } catch (const IOError&) {}
    try {
        load(net, input, false);
    } catch (const IOError&) {}
    return 0;
}
