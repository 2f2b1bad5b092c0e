#include "server/memory_report.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>
#include <string_view>

#include "server/chat_service.h"

namespace vlserve::server {

MemoryComponents CountMemory(const ModelContext& ctx, int64_t response_cache_bytes,
                             int64_t response_cache_cap) {
  MemoryComponents m;
  for (const gguf::PageRange& r : ctx.model->file().PagesInUse()) {
    m.text_file += static_cast<int64_t>(r.bytes);
  }
  m.text_copies = ctx.model->copy_bytes();
  if (ctx.vision.model != nullptr) {
    for (const gguf::PageRange& r : ctx.vision.model->file().PagesInUse()) {
      m.mmproj_file += static_cast<int64_t>(r.bytes);
    }
    m.mmproj_copies = ctx.vision.model->copy_bytes();
  }
  m.kv = ctx.engine->KvResidentBytes();
  m.kv_reserved = ctx.engine->Stats().kv_bytes_total;
  if (ctx.vision.cache != nullptr) {
    const EncoderCacheStats stats = ctx.vision.cache->Stats();
    m.encoder_cache = stats.bytes;
    m.encoder_cache_cap = stats.capacity_bytes;
  }
  m.response_cache = response_cache_bytes;
  m.response_cache_cap = response_cache_cap;
  return m;
}

ProcessMemory ParseProcStatus(const std::string& text) {
  ProcessMemory p;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string_view key(line.data(), colon);
    int64_t* field = key == "VmRSS"     ? &p.rss
                     : key == "RssAnon" ? &p.anon
                     : key == "RssFile" ? &p.file
                                        : nullptr;
    if (field == nullptr) continue;
    try {
      *field = std::stoll(line.substr(colon + 1)) * 1024;
    } catch (const std::exception&) {
      // not a number: leave the field unknown
    }
  }
  return p;
}

ProcessMemory ReadProcessMemory() {
  std::ifstream in("/proc/self/status");
  if (!in) return {};
  std::stringstream text;
  text << in.rdbuf();
  return ParseProcStatus(text.str());
}

std::string MemoryReport(const MemoryComponents& m, const ProcessMemory& p) {
  const auto mib = [](int64_t bytes) { return bytes / 1048576.0; };
  const int64_t counted = m.text_file + m.mmproj_file + m.text_copies + m.mmproj_copies + m.kv +
                          m.encoder_cache + m.response_cache;
  std::string measured = "RSS unknown", other;
  if (p.rss >= 0) {
    measured = fmt::format("RSS {:.1f} MiB (anonymous {:.1f}, file-backed {:.1f})", mib(p.rss),
                           mib(p.anon), mib(p.file));
    other = fmt::format(" + other {:.1f} (activations, allocator, code)", mib(p.rss - counted));
  }
  return fmt::format(
      "memory: {} = weights read from the files {:.1f} (text {:.1f}, mmproj {:.1f}) + copies "
      "made at load {:.1f} (text {:.1f}, mmproj {:.1f}) + KV pool {:.1f} (of {:.0f} reserved) + "
      "encoder cache {:.1f} "
      "(at most {:.0f}) + response cache {:.1f} (at most {:.0f}){}",
      measured, mib(m.text_file + m.mmproj_file), mib(m.text_file), mib(m.mmproj_file),
      mib(m.text_copies + m.mmproj_copies), mib(m.text_copies), mib(m.mmproj_copies), mib(m.kv),
      mib(m.kv_reserved), mib(m.encoder_cache), mib(m.encoder_cache_cap), mib(m.response_cache),
      mib(m.response_cache_cap), other);
}

}  // namespace vlserve::server
