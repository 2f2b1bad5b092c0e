// A libFuzzer-free driver for the fuzz targets, linked into the `fuzz_replay_<name>` CTest
// tests of the normal (gcc) build: it runs LLVMFuzzerTestOneInput over every file of the
// given corpus directories, then over a fixed, seeded set of byte-level mutations of them
// (bit flips, byte overwrites with boundary values, inserts, erases, truncation, chunk
// duplication, splices of two files). It finds nothing new by itself (no coverage
// feedback); it keeps the checked-in seeds and their near neighbours crash-free in every
// CI build, including the ASan/UBSan one, at the cost of one small binary per target.
//
//   fuzz_replay_<name> [--mutations N] [--seed S] CORPUS_DIR_OR_FILE...
//
// A failing input is written to fuzz-replay-failure-<name> in the working directory
// before it runs, so a crash leaves its reproducer behind (`<name>_fuzz FILE` replays it).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

namespace {

namespace fs = std::filesystem;

// xorshift64*: the same mutations on every machine and compiler.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed ? seed : 1) {}
  uint64_t Next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545F4914F6CDD1DULL;
  }
  size_t Below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(Next() % n); }

 private:
  uint64_t state_;
};

// Values that often sit on a parser's boundaries (lengths, signs, sentinels).
constexpr uint8_t kInteresting[] = {0x00, 0x01, 0x02, 0x07, 0x08, 0x0F, 0x10, 0x1F, 0x20,
                                    0x22, 0x2C, 0x2D, 0x30, 0x39, 0x3A, 0x5B, 0x5C, 0x5D,
                                    0x7B, 0x7D, 0x7F, 0x80, 0xBF, 0xC0, 0xE0, 0xEF, 0xF0,
                                    0xF8, 0xFE, 0xFF};

std::string Mutate(const std::string& in, const std::string& other, Rng* rng) {
  std::string s = in;
  const int steps = 1 + static_cast<int>(rng->Below(4));
  for (int step = 0; step < steps; ++step) {
    const size_t pos = rng->Below(s.size() + 1);
    switch (rng->Below(8)) {
      case 0:  // flip one bit
        if (!s.empty()) s[rng->Below(s.size())] ^= static_cast<char>(1u << rng->Below(8));
        break;
      case 1:  // overwrite a byte with a boundary value
        if (!s.empty()) {
          s[rng->Below(s.size())] =
              static_cast<char>(kInteresting[rng->Below(sizeof(kInteresting))]);
        }
        break;
      case 2:  // insert a few bytes
        s.insert(pos, std::string(1 + rng->Below(4),
                                  static_cast<char>(kInteresting[rng->Below(sizeof(kInteresting))])));
        break;
      case 3:  // erase a short run
        if (pos < s.size()) s.erase(pos, 1 + rng->Below(std::min<size_t>(16, s.size() - pos)));
        break;
      case 4:  // truncate
        s.resize(rng->Below(s.size() + 1));
        break;
      case 5:  // duplicate a chunk in place
        if (pos < s.size()) {
          const std::string chunk = s.substr(pos, 1 + rng->Below(32));
          s.insert(rng->Below(s.size() + 1), chunk);
        }
        break;
      case 6:  // splice: this input's head, another's tail
        if (!other.empty()) s = s.substr(0, pos) + other.substr(rng->Below(other.size()));
        break;
      case 7:  // a random 32-bit little-endian value (lengths, counts, offsets)
        if (s.size() >= 4) {
          const uint32_t v = static_cast<uint32_t>(rng->Next());
          std::memcpy(s.data() + rng->Below(s.size() - 3), &v, 4);
        }
        break;
    }
  }
  return s;
}

bool ReadFile(const fs::path& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  out->assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return true;
}

std::string failure_file;

void Run(const std::string& input) {
  {  // Written first: a crash cannot be caught, but it leaves the reproducer here.
    std::ofstream f(failure_file, std::ios::binary | std::ios::trunc);
    f.write(input.data(), static_cast<std::streamsize>(input.size()));
  }
  // A copy of exactly `size` bytes, so ASan sees a read one past the end.
  std::vector<uint8_t> copy(input.begin(), input.end());
  LLVMFuzzerTestOneInput(copy.data(), copy.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);
  long mutations = 2000;
  uint64_t seed = 0x5EED;
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--mutations" && i + 1 < argc) {
      mutations = std::strtol(argv[++i], nullptr, 10);
    } else if (arg == "--seed" && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (fs::is_directory(arg)) {
      for (const auto& e : fs::directory_iterator(arg)) {
        if (e.is_regular_file()) files.push_back(e.path());
      }
    } else if (fs::is_regular_file(arg)) {
      files.push_back(arg);
    } else {
      std::fprintf(stderr, "%s: '%s' is neither a corpus directory nor a file\n", argv[0],
                   arg.c_str());
      return 2;
    }
  }
  std::sort(files.begin(), files.end());  // directory order differs between file systems
  std::vector<std::string> corpus;
  for (const fs::path& p : files) {
    std::string bytes;
    if (!ReadFile(p, &bytes)) {
      std::fprintf(stderr, "cannot read %s\n", p.c_str());
      return 2;
    }
    corpus.push_back(std::move(bytes));
  }
  if (corpus.empty()) {
    std::fprintf(stderr, "%s: no corpus files given (pass tests/fuzz/corpus/<name>)\n", argv[0]);
    return 2;
  }
  failure_file = "fuzz-replay-failure-" + fs::path(argv[0]).filename().string();
  Run("");  // the empty input
  for (const std::string& input : corpus) Run(input);
  Rng rng(seed);
  for (long i = 0; i < mutations; ++i) {
    const std::string& base = corpus[rng.Below(corpus.size())];
    const std::string& other = corpus[rng.Below(corpus.size())];
    Run(Mutate(base, other, &rng));
  }
  std::remove(failure_file.c_str());
  std::printf("%zu corpus files and %ld mutations ran without a finding\n", corpus.size(),
              mutations);
  return 0;
}
