// `vlserve inspect FILE.gguf [--json] [--all]`: metadata, tensor table and totals.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include "command.h"
#include "gguf/gguf.h"

namespace vlserve::app {
namespace {

constexpr size_t kShownElements = 8;  // array elements shown without --all
constexpr size_t kShownChars = 200;   // string bytes shown without --all (chat templates)

std::string ShowValue(const gguf::Value& v, bool all) {
  const std::string* s = v.AsString();
  if (all || s == nullptr || s->size() <= kShownChars) {
    return v.DebugString(all ? SIZE_MAX : kShownElements);
  }
  size_t cut = kShownChars;  // do not split a UTF-8 sequence
  while (cut > 0 && (static_cast<unsigned char>((*s)[cut]) >> 6) == 2) --cut;
  return fmt::format("{}... ({} bytes)", gguf::Value::String(s->substr(0, cut)).DebugString(),
                     s->size());
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += fmt::format("{}{}", i ? ", " : "", shape[i]);
  return s + "]";
}

std::string TypeString(const gguf::Value& v) {
  if (!v.is_array()) return std::string(gguf::ValueTypeName(v.type()));
  return fmt::format("{}[{}]", gguf::ValueTypeName(v.array_type()), v.array_size());
}

struct Totals {
  int64_t parameters = 0;
  int64_t bytes = 0;
  std::map<std::string, int64_t> bytes_by_type;  // sorted by type name
};

Totals Sum(const gguf::File& f) {
  Totals t;
  for (const gguf::TensorInfo& ti : f.tensors()) {
    t.parameters += ti.num_elements;
    t.bytes += ti.num_bytes;
    t.bytes_by_type[std::string(Info(ti.type).name)] += ti.num_bytes;
  }
  return t;
}

void PrintText(const gguf::File& f, bool all) {
  std::printf("file: %s\nversion: %u  alignment: %llu  data offset: %llu  size: %llu bytes\n",
              f.path().c_str(), f.version(), static_cast<unsigned long long>(f.alignment()),
              static_cast<unsigned long long>(f.data_offset()),
              static_cast<unsigned long long>(f.file_size()));
  std::printf("\nmetadata (%zu keys):\n", f.metadata().size());
  size_t key_width = 0;
  for (const auto& [key, value] : f.metadata()) key_width = std::max(key_width, key.size());
  for (const auto& [key, value] : f.metadata()) {
    const std::string shown = ShowValue(value, all);
    std::printf("  %-*s  %-14s  %s\n", static_cast<int>(key_width), key.c_str(),
                TypeString(value).c_str(), shown.c_str());
  }
  std::printf("\ntensors (%zu):\n", f.tensors().size());
  size_t name_width = 4;
  for (const gguf::TensorInfo& t : f.tensors()) name_width = std::max(name_width, t.name.size());
  if (!f.tensors().empty()) {
    std::printf("  %-*s  %-8s  %-24s  %14s\n", static_cast<int>(name_width), "name", "type",
                "shape", "bytes");
  }
  for (const gguf::TensorInfo& t : f.tensors()) {
    std::printf("  %-*s  %-8s  %-24s  %14lld\n", static_cast<int>(name_width), t.name.c_str(),
                std::string(Info(t.type).name).c_str(), ShapeString(t.shape).c_str(),
                static_cast<long long>(t.num_bytes));
  }
  const Totals totals = Sum(f);
  std::printf("\ntotals: %zu tensors, %lld parameters, %lld bytes (%.2f MiB)\n", f.tensors().size(),
              static_cast<long long>(totals.parameters), static_cast<long long>(totals.bytes),
              totals.bytes / 1048576.0);
  for (const auto& [type, bytes] : totals.bytes_by_type) {
    std::printf("  %-8s %14lld bytes\n", type.c_str(), static_cast<long long>(bytes));
  }
}

// JSON strings must be UTF-8; GGUF strings usually are, but nothing guarantees it.
std::string ValidUtf8(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = n > 0 && i + n <= s.size();
    for (size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) >> 6) == 2;
    if (ok) {
      out.append(s, i, n);
      i += n;
    } else {
      out += "\xef\xbf\xbd";  // U+FFFD
      ++i;
    }
  }
  return out;
}

boost::json::value ScalarJson(const gguf::Value& v) {
  if (const std::string* s = v.AsString()) return boost::json::string(ValidUtf8(*s));
  if (std::optional<bool> b = v.AsBool()) return *b;
  if (std::optional<uint64_t> u = v.AsUint64()) return *u;
  if (std::optional<int64_t> i = v.AsInt()) return *i;
  const double d = *v.AsFloat();
  if (!std::isfinite(d)) return nullptr;  // JSON has no NaN/Inf
  return d;
}

boost::json::object MetadataJson(const std::string& key, const gguf::Value& v, bool all) {
  boost::json::object o;
  o["key"] = key;
  o["type"] = std::string(gguf::ValueTypeName(v.type()));
  if (!v.is_array()) {
    o["value"] = ScalarJson(v);
    return o;
  }
  o["element_type"] = std::string(gguf::ValueTypeName(v.array_type()));
  o["count"] = v.array_size();
  const size_t shown = all ? v.array_size() : std::min(v.array_size(), kShownElements);
  boost::json::array values;
  values.reserve(shown);
  for (size_t i = 0; i < shown; ++i) values.push_back(ScalarJson(v.ArrayElement(i)));
  o["value"] = std::move(values);
  o["truncated"] = shown < v.array_size();
  return o;
}

void PrintJson(const gguf::File& f, bool all) {
  boost::json::object root;
  root["file"] = f.path();
  root["version"] = f.version();
  root["alignment"] = f.alignment();
  root["data_offset"] = f.data_offset();
  root["file_size"] = f.file_size();
  boost::json::array metadata;
  for (const auto& [key, value] : f.metadata()) metadata.push_back(MetadataJson(key, value, all));
  root["metadata"] = std::move(metadata);
  boost::json::array tensors;
  for (const gguf::TensorInfo& t : f.tensors()) {
    boost::json::array shape;
    for (int64_t d : t.shape) shape.push_back(d);
    tensors.push_back(boost::json::object{{"name", ValidUtf8(t.name)},
                                          {"type", std::string(Info(t.type).name)},
                                          {"shape", std::move(shape)},
                                          {"offset", t.offset},
                                          {"elements", t.num_elements},
                                          {"bytes", t.num_bytes}});
  }
  root["tensors"] = std::move(tensors);
  const Totals totals = Sum(f);
  boost::json::object by_type;
  for (const auto& [type, bytes] : totals.bytes_by_type) by_type[type] = bytes;
  root["totals"] = boost::json::object{{"tensors", f.tensors().size()},
                                       {"parameters", totals.parameters},
                                       {"bytes", totals.bytes},
                                       {"bytes_by_type", std::move(by_type)}};
  const std::string text = boost::json::serialize(root);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
}

int RunInspect(int argc, char** argv) {
  CLI::App app{"Show a GGUF file's metadata, tensors and totals"};
  app.name("vlserve inspect");
  std::string path;
  bool json = false;
  bool all = false;
  app.add_option("file", path, "GGUF file to inspect")->required();
  app.add_flag("--json", json, "print one JSON object instead of text");
  app.add_flag("--all", all, "print every array element (default: the first 8 and the count)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 1;  // --help is not an error
  }

  StatusOr<std::unique_ptr<gguf::File>> file = gguf::File::Open(path);
  if (!file.ok()) {
    std::fprintf(stderr, "vlserve inspect: %s\n", file.status().ToString().c_str());
    return 1;
  }
  if (json) {
    PrintJson(**file, all);
  } else {
    PrintText(**file, all);
  }
  return 0;
}

}  // namespace

VLSERVE_COMMAND("inspect", "show a GGUF file's metadata, tensors and totals", RunInspect);

}  // namespace vlserve::app
