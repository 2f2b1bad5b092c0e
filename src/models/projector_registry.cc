// The one table of supported mmproj projector types. Adding one = a projector_<name>.cc
// defining its ProjectorInfo + one line here.
#include <fmt/format.h>

#include "models/vision_model.h"

namespace vlserve::models {

const std::vector<const ProjectorInfo*>& ProjectorTypes() {
  static const std::vector<const ProjectorInfo*> table = {&Idefics3ProjectorInfo(),
                                                          &MlpProjectorInfo()};
  return table;
}

std::string SupportedProjectorList() {
  std::string out;
  for (const ProjectorInfo* p : ProjectorTypes())
    out += (out.empty() ? "" : ", ") + std::string(p->name);
  return out;
}

StatusOr<const ProjectorInfo*> FindProjector(std::string_view name) {
  for (const ProjectorInfo* p : ProjectorTypes()) {
    if (name == p->name) return p;
  }
  return UnimplementedError(
      fmt::format("mmproj projector_type '{}' is not supported; supported: {}", name,
                  SupportedProjectorList()));
}

}  // namespace vlserve::models
