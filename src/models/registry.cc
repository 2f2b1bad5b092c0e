// The table of text architectures. One line per architecture.
#include "models/registry.h"

#include <fmt/format.h>

namespace vlserve::models {

const std::vector<const ArchTraits*>& TextArchitectures() {
  static const std::vector<const ArchTraits*> table = {
      &LlamaArch(),
      &Qwen2Arch(),
      &Qwen2VlArch(),
      &Glm4Arch(),
      &Qwen3VlArch(),
  };
  return table;
}

std::string SupportedArchitectureList() {
  std::string out;
  for (const ArchTraits* arch : TextArchitectures()) {
    if (!out.empty()) out += ", ";
    out += arch->name;
  }
  return out;
}

StatusOr<const ArchTraits*> FindTextArch(std::string_view name) {
  for (const ArchTraits* arch : TextArchitectures()) {
    if (name == arch->name) return arch;
  }
  return UnimplementedError(fmt::format("architecture '{}' is not supported; supported: {}",
                                        name, SupportedArchitectureList()));
}

StatusOr<std::unique_ptr<TextModel>> LoadTextModel(std::unique_ptr<gguf::File> file) {
  const std::string path = file->path();
  ASSIGN_OR_RETURN(std::string arch_name, file->GetString("general.architecture"));
  auto arch = FindTextArch(arch_name);
  if (!arch.ok()) return arch.status().WithContext(fmt::format("loading {}", path));
  auto model = TextModel::Load(std::move(file), **arch);
  if (!model.ok()) return model.status().WithContext(fmt::format("loading {}", path));
  return model;
}

StatusOr<std::unique_ptr<TextModel>> LoadTextModel(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<gguf::File> file, gguf::File::Open(path));
  return LoadTextModel(std::move(file));
}

}  // namespace vlserve::models
