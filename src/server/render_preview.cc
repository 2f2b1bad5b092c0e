#include "server/render_preview.h"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "media/encode.h"
#include "render/vision_tokens.h"

namespace vlserve::server {
namespace {

namespace json = boost::json;

// Embedding rows one page costs with the served tower's family rule (the prompt adds a
// few wrapper tokens on top). Without a tower: SmolVLM-256M's numbers
// (render/vision_tokens.h).
int64_t PageRows(int width, int height, const VisionContext& vision) {
  if (vision.model == nullptr) {
    return render::EstimateVisionTokens(width, height, render::VisionConfig{}).tokens;
  }
  auto layout = vision.model->Plan(width, height);
  return layout.ok() ? layout->tokens : 0;
}

}  // namespace

StatusOr<std::string> RenderPreviewJson(std::string_view body, const ModelContext& ctx) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return InvalidArgumentError("the body must be a JSON object");
  const json::object& o = v.as_object();
  const json::value* text = o.if_contains("text");
  if (text == nullptr || !text->is_string()) {
    return InvalidArgumentError("\"text\" (string) is required");
  }
  int64_t max_images = 4;
  if (const json::value* m = o.if_contains("max_images")) {
    if (!m->is_int64() || m->as_int64() < 0 || m->as_int64() > 16) {
      return InvalidArgumentError("\"max_images\" must be an integer in [0, 16]");
    }
    max_images = m->as_int64();
  }
  const VisionContext& vision = ctx.vision;
  if (vision.renderer == nullptr) {
    return FailedPreconditionError("document rendering is not available (no fonts loaded)");
  }
  std::shared_ptr<const render::Renderer> renderer = vision.renderer;
  if (const json::value* r = o.if_contains("render")) {
    ASSIGN_OR_RETURN(render::RenderOptions options,
                     ParseRenderOptions(json::serialize(*r), vision.renderer->options()));
    ASSIGN_OR_RETURN(renderer, RendererFor(vision, options));
  }
  const std::string_view utf8 = text->as_string();
  json::array images, sizes;
  int64_t image_tokens = 0, pages = 0;
  render::RenderSummary summary;
  Status s = renderer->RenderAll(
      utf8, render::PixelFormat::kRgb8, nullptr,
      [&](const render::PageLayout&, const render::ImageView& view) -> Status {
        if (pages >= vision.max_document_pages) {
          return InvalidArgumentError(fmt::format(
              "the document renders to more than {} pages (--max-document-pages)",
              vision.max_document_pages));
        }
        ++pages;
        image_tokens += PageRows(view.width, view.height, vision);
        sizes.push_back(json::array{view.width, view.height});
        if (static_cast<int64_t>(images.size()) >= max_images) return OkStatus();
        ASSIGN_OR_RETURN(std::vector<uint8_t> jpeg, media::EncodeJpeg(PageImage(view), 80));
        images.push_back(json::string(
            "data:image/jpeg;base64," +
            EncodeBase64({reinterpret_cast<const char*>(jpeg.data()), jpeg.size()})));
        return OkStatus();
      },
      &summary);
  RETURN_IF_ERROR(s);
  // The rule of a chat "document" part (vision_input.cc): nothing to render is a 400.
  if (pages == 0) return InvalidArgumentError("the document text is empty (nothing to render)");
  const int64_t text_tokens =
      static_cast<int64_t>(ctx.tokenizer->Encode(utf8, {.add_special = false}).size());
  json::object out;
  out["pages"] = pages;
  out["chars"] = summary.text.chars;
  out["text_tokens"] = text_tokens;
  out["image_tokens"] = image_tokens;
  out["compression"] = image_tokens > 0 ? static_cast<double>(text_tokens) / image_tokens : 0.0;
  out["images"] = std::move(images);
  out["sizes"] = std::move(sizes);
  return json::serialize(out);
}

}  // namespace vlserve::server
