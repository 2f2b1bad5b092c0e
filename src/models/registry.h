// The one table of supported text architectures (registry.cc) and the loader entry point.
// Adding an architecture = a new file defining its ArchTraits + one line in the table.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "gguf/gguf.h"
#include "models/text_model.h"

namespace vlserve::models {

// Per-architecture traits, one file each (llama.cc, qwen2.cc, qwen2vl.cc, glm4.cc,
// qwen3vl.cc).
const ArchTraits& LlamaArch();
const ArchTraits& Qwen2Arch();
const ArchTraits& Qwen2VlArch();
const ArchTraits& Glm4Arch();
const ArchTraits& Qwen3VlArch();

// All registered architectures, in table order.
const std::vector<const ArchTraits*>& TextArchitectures();
// "llama, qwen2"
std::string SupportedArchitectureList();
// Unimplemented "architecture 'x' is not supported; supported: llama, qwen2".
StatusOr<const ArchTraits*> FindTextArch(std::string_view name);

// Opens a text-model GGUF and loads it with the traits its general.architecture names.
StatusOr<std::unique_ptr<TextModel>> LoadTextModel(const std::string& path);
StatusOr<std::unique_ptr<TextModel>> LoadTextModel(std::unique_ptr<gguf::File> file);

}  // namespace vlserve::models
