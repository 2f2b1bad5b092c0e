// Minimal .npy reader for the media golden files (little-endian uint8 / float32, C order).
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace vlserve::media::testing {

struct Npy {
  std::string dtype;          // "<f4", "|u1"
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;  // raw bytes

  int64_t count() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  const float* f32() const { return reinterpret_cast<const float*>(data.data()); }
};

inline std::string GoldenPath(const std::string& name) {
  return std::string(VLSERVE_SOURCE_DIR) + "/tests/golden/media/" + name;
}

inline std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

// Returns false on any format problem (the test then fails with the file name).
inline bool LoadNpy(const std::string& path, Npy* out) {
  std::vector<uint8_t> bytes = ReadFile(path);
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0) return false;
  const size_t header_len = bytes[8] | bytes[9] << 8;  // version 1.0
  if (10 + header_len > bytes.size()) return false;
  const std::string header(bytes.begin() + 10, bytes.begin() + 10 + header_len);
  auto value_after = [&](const std::string& key) {
    size_t at = header.find(key);
    return at == std::string::npos ? std::string() : header.substr(at + key.size());
  };
  std::string descr = value_after("'descr': '");
  out->dtype = descr.substr(0, descr.find('\''));
  if (header.find("'fortran_order': False") == std::string::npos) return false;
  std::string shape = value_after("'shape': (");
  shape = shape.substr(0, shape.find(')'));
  out->shape.clear();
  for (size_t pos = 0; pos < shape.size();) {
    size_t comma = shape.find(',', pos);
    std::string item = shape.substr(pos, comma == std::string::npos ? comma : comma - pos);
    if (item.find_first_of("0123456789") != std::string::npos) {
      out->shape.push_back(std::stoll(item));
    }
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  out->data.assign(bytes.begin() + 10 + header_len, bytes.end());
  const int64_t item = out->dtype == "<f4" ? 4 : 1;
  return static_cast<int64_t>(out->data.size()) == out->count() * item;
}

}  // namespace vlserve::media::testing
