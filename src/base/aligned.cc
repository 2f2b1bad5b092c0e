#include "base/aligned.h"

#include <sys/mman.h>

#include <cstdlib>
#include <string_view>

namespace vlserve {

bool HugePagesEnabled() {
  // VLSERVE_HUGE_PAGES=0 keeps 4 KiB pages (A/B runs, or a machine short of memory).
  static const bool enabled = [] {
    const char* env = std::getenv("VLSERVE_HUGE_PAGES");
    return env == nullptr || std::string_view(env) != "0";
  }();
  return enabled;
}

void AdviseHugePages(void* p, size_t bytes) {
  if (!HugePagesEnabled()) return;
  // Only a hint: an error (THP compiled out, old kernel) leaves normal pages.
  (void)madvise(p, bytes, MADV_HUGEPAGE);
}

}  // namespace vlserve
