// response_format's JSON Schema -> the engine's JsonGrammar (engine/json_constraint.h).
// Only a subset is supported (docs/api.md "Structured output"); every other keyword is an
// InvalidArgument naming it and where it is, never silently ignored:
//   type (one name or a list), properties (generated in their order), required,
//   additionalProperties (false / true / absent: only the listed properties are
//   generated), items, minItems, maxItems, minLength, maxLength, enum and const of
//   scalars, anyOf, and the annotations title, description, default, examples, $schema,
//   $id, $comment, deprecated, readOnly, writeOnly.
#pragma once

#include <boost/json/value.hpp>
#include <memory>
#include <string_view>

#include "base/status.h"
#include "engine/json_constraint.h"

namespace vlserve::server {

// `field` names the schema in error messages ("response_format.json_schema.schema").
StatusOr<std::shared_ptr<const JsonGrammar>> CompileJsonSchema(const boost::json::value& schema,
                                                               std::string_view field);

}  // namespace vlserve::server
