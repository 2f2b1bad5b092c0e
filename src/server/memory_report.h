// Start-up accounting of the server's resident memory by component (docs/serve.md
// "Memory"): what the model holds after load and what the process measures, side by side.
#pragma once

#include <cstdint>
#include <string>

namespace vlserve::server {

struct ModelContext;

// What each component holds, in bytes.
struct MemoryComponents {
  int64_t text_file = 0, mmproj_file = 0;      // weight pages still read from the mapping
  int64_t text_copies = 0, mmproj_copies = 0;  // copies made at load (prepacked, huge-page, BF16)
  int64_t kv = 0;                              // the KV pool's pages written so far
  int64_t kv_reserved = 0;  // the whole pool (--ctx-size tokens), resident once all are used
  int64_t encoder_cache = 0, encoder_cache_cap = 0;
  int64_t response_cache = 0, response_cache_cap = 0;
};

// The process's own counters (/proc/self/status VmRSS, RssAnon, RssFile); -1 where the
// kernel does not give them.
struct ProcessMemory {
  int64_t rss = -1, anon = -1, file = -1;
};

MemoryComponents CountMemory(const ModelContext& ctx, int64_t response_cache_bytes,
                             int64_t response_cache_cap);
ProcessMemory ReadProcessMemory();
// Parses the text of a /proc/PID/status file (kB values).
ProcessMemory ParseProcStatus(const std::string& text);

// One log line: measured RSS, then each component; "other" is RSS minus the components
// counted (activation scratch, allocator slack, code and libraries).
std::string MemoryReport(const MemoryComponents& m, const ProcessMemory& p);

}  // namespace vlserve::server
