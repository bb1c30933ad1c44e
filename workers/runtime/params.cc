#include "absl/strings/string_view.h"
#include "workers/runtime/params.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace loupe {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

std::string TypeName(const FieldDescriptor* f) {
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
      return "int";
    case FieldDescriptor::CPPTYPE_FLOAT:
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return "float";
    case FieldDescriptor::CPPTYPE_BOOL:
      return "bool";
    case FieldDescriptor::CPPTYPE_STRING:
      return "string";
    default:
      return "unsupported";
  }
}

// Numeric value of a set scalar field, for bound checks.
double NumericValue(const Message& m, const FieldDescriptor* f) {
  const Reflection* r = m.GetReflection();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: return r->GetInt32(m, f);
    case FieldDescriptor::CPPTYPE_INT64: return static_cast<double>(r->GetInt64(m, f));
    case FieldDescriptor::CPPTYPE_UINT32: return r->GetUInt32(m, f);
    case FieldDescriptor::CPPTYPE_UINT64: return static_cast<double>(r->GetUInt64(m, f));
    case FieldDescriptor::CPPTYPE_FLOAT: return r->GetFloat(m, f);
    case FieldDescriptor::CPPTYPE_DOUBLE: return r->GetDouble(m, f);
    case FieldDescriptor::CPPTYPE_BOOL: return r->GetBool(m, f) ? 1 : 0;
    default: return 0;
  }
}

std::string FormatNumber(double v) {
  if (std::abs(v) < 1e15 && v == std::floor(v)) {
    return absl::StrCat(static_cast<int64_t>(v));
  }
  return absl::StrCat(v);
}

size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (absl::ascii_tolower(a[i - 1]) ==
                                          absl::ascii_tolower(b[j - 1])
                                      ? 0
                                      : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

std::string SpecFieldName(absl::string_view kind) {
  return absl::StrReplaceAll(kind, {{".", "_"}});
}

absl::StatusOr<Message*> MutableKindParams(loupe::v1::JobSpec* spec,
                                           absl::string_view kind) {
  const FieldDescriptor* f =
      spec->GetDescriptor()->FindFieldByName(SpecFieldName(kind));
  if (f == nullptr || f->containing_oneof() == nullptr ||
      f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
    return absl::NotFoundError(absl::StrCat("unknown job kind '", kind, "'"));
  }
  return spec->GetReflection()->MutableMessage(spec, f);
}

std::string SetSpecField(const loupe::v1::JobSpec& spec) {
  const FieldDescriptor* f = spec.GetReflection()->GetOneofFieldDescriptor(
      spec, spec.GetDescriptor()->FindOneofByName("params"));
  return f == nullptr ? "" : f->name();
}

const Message* KindParams(const loupe::v1::JobSpec& spec) {
  const FieldDescriptor* f = spec.GetReflection()->GetOneofFieldDescriptor(
      spec, spec.GetDescriptor()->FindOneofByName("params"));
  return f == nullptr ? nullptr : &spec.GetReflection()->GetMessage(spec, f);
}

std::string SuggestName(absl::string_view name,
                        const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& c : candidates) {
    size_t d = EditDistance(name, c);
    // A candidate that contains the name (or the reverse) is also plausible.
    if (absl::StrContains(c, name) || absl::StrContains(name, c)) {
      d = std::min<size_t>(d, 1);
    }
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  size_t limit = std::max<size_t>(2, name.size() / 3);
  return best_d <= limit ? best : "";
}

absl::Status SetParamFromText(Message* params, absl::string_view name,
                              absl::string_view text) {
  const Descriptor* d = params->GetDescriptor();
  const FieldDescriptor* f = d->FindFieldByName(std::string(name));
  if (f == nullptr) {
    std::vector<std::string> names;
    for (int i = 0; i < d->field_count(); ++i) names.push_back(d->field(i)->name());
    std::string hint = SuggestName(name, names);
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown parameter '", name, "'",
        hint.empty() ? "" : absl::StrCat("; did you mean '", hint, "'?"),
        hint.empty() ? absl::StrCat(" (known: ", absl::StrJoin(names, ", "), ")") : ""));
  }
  const Reflection* r = params->GetReflection();
  std::string t(absl::StripAsciiWhitespace(text));
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(
        "parameter '", name, "': '", text, "' is not ", what));
  };
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: {
      int32_t v;
      if (!absl::SimpleAtoi(t, &v)) return bad("an integer");
      r->SetInt32(params, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t v;
      if (!absl::SimpleAtoi(t, &v)) {
        // Accept "1e6"-style integers, which researchers type.
        double dv;
        if (!absl::SimpleAtod(t, &dv) || dv != std::floor(dv) || std::abs(dv) > 9e18)
          return bad("an integer");
        v = static_cast<int64_t>(dv);
      }
      r->SetInt64(params, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      uint32_t v;
      if (!absl::SimpleAtoi(t, &v)) return bad("a non-negative integer");
      r->SetUInt32(params, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t v;
      if (!absl::SimpleAtoi(t, &v)) return bad("a non-negative integer");
      r->SetUInt64(params, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_FLOAT: {
      float v;
      if (!absl::SimpleAtof(t, &v) || !std::isfinite(v)) return bad("a number");
      r->SetFloat(params, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      double v;
      if (!absl::SimpleAtod(t, &v) || !std::isfinite(v)) return bad("a number");
      r->SetDouble(params, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      bool v;
      if (!absl::SimpleAtob(t, &v)) return bad("true or false");
      r->SetBool(params, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_STRING:
      r->SetString(params, f, std::string(text));
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("parameter '", name, "' cannot be set from text"));
  }
  return absl::OkStatus();
}

std::string ParamValueText(const Message& params, absl::string_view name) {
  const FieldDescriptor* f = params.GetDescriptor()->FindFieldByName(std::string(name));
  if (f == nullptr) return "";
  const Reflection* r = params.GetReflection();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING: return r->GetString(params, f);
    case FieldDescriptor::CPPTYPE_BOOL: return r->GetBool(params, f) ? "true" : "false";
    case FieldDescriptor::CPPTYPE_FLOAT:
    case FieldDescriptor::CPPTYPE_DOUBLE: return absl::StrCat(NumericValue(params, f));
    default: return FormatNumber(NumericValue(params, f));
  }
}

absl::Status ApplyDefaultsAndValidate(const JobKind& kind, Message* params) {
  const Descriptor* d = params->GetDescriptor();
  const Reflection* r = params->GetReflection();
  for (const ParamSpec& p : kind.params()) {
    const FieldDescriptor* f = d->FindFieldByName(p.name);
    if (f == nullptr) {
      return absl::InternalError(absl::StrCat(kind.name(), " declares unknown parameter ", p.name));
    }
    auto err = [&](absl::string_view what) {
      return absl::InvalidArgumentError(
          absl::StrCat(kind.name(), " parameter '", p.name, "': ", what));
    };
    if (!r->HasField(*params, f)) {
      if (!p.default_value.empty()) {
        absl::Status s = SetParamFromText(params, p.name, p.default_value);
        if (!s.ok()) return absl::InternalError(s.message());
      }
      continue;
    }
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
      const std::string v = r->GetString(*params, f);
      if (!p.choices.empty() &&
          std::find(p.choices.begin(), p.choices.end(), v) == p.choices.end()) {
        std::string hint = SuggestName(v, p.choices);
        return err(absl::StrCat("'", v, "' is not one of ", absl::StrJoin(p.choices, ", "),
                                hint.empty() ? "" : absl::StrCat(" (did you mean '", hint, "'?)")));
      }
      continue;
    }
    double v = NumericValue(*params, f);
    if (p.min && v < *p.min) {
      return err(absl::StrCat("must be at least ", FormatNumber(*p.min), ", got ", FormatNumber(v)));
    }
    if (p.max && v > *p.max) {
      return err(absl::StrCat("must be at most ", FormatNumber(*p.max), ", got ", FormatNumber(v)));
    }
  }
  return kind.Validate(*params);
}

std::vector<std::string> ReferenceValues(const JobKind& kind, const Message& params) {
  std::vector<std::string> out;
  const Descriptor* d = params.GetDescriptor();
  const Reflection* r = params.GetReflection();
  for (const ParamSpec& p : kind.params()) {
    if (!p.is_reference) continue;
    const FieldDescriptor* f = d->FindFieldByName(p.name);
    if (f == nullptr || f->cpp_type() != FieldDescriptor::CPPTYPE_STRING) continue;
    if (!r->HasField(params, f)) continue;
    std::string v = r->GetString(params, f);
    if (!p.is_reference_list) {
      if (!v.empty()) out.push_back(std::move(v));
      continue;
    }
    for (absl::string_view entry : absl::StrSplit(v, ',')) {
      entry = absl::StripAsciiWhitespace(entry);
      if (!entry.empty()) out.emplace_back(entry);
    }
  }
  return out;
}

loupe::v1::JobKindInfo DescribeKind(const JobKind& kind, const Descriptor* params) {
  loupe::v1::JobKindInfo info;
  info.set_name(kind.name());
  info.set_description(kind.description());
  for (const ParamSpec& p : kind.params()) {
    auto* pi = info.add_params();
    pi->set_name(p.name);
    const FieldDescriptor* f = params->FindFieldByName(p.name);
    pi->set_type(f ? TypeName(f) : "unknown");
    pi->set_default_value(p.default_value);
    if (p.min) { pi->set_has_min(true); pi->set_min(*p.min); }
    if (p.max) { pi->set_has_max(true); pi->set_max(*p.max); }
    pi->set_help(p.help);
    for (const auto& c : p.choices) pi->add_choices(c);
    pi->set_is_reference(p.is_reference);
  }
  for (const auto& r : kind.result_fields()) info.add_result_fields(r);
  for (const auto& a : kind.artifact_names()) info.add_artifacts(a);
  return info;
}

absl::Status CheckParamTable(const JobKind& kind, const Descriptor* params) {
  std::set<std::string> seen;
  for (const ParamSpec& p : kind.params()) {
    const FieldDescriptor* f = params->FindFieldByName(p.name);
    auto err = [&](absl::string_view what) {
      return absl::InternalError(absl::StrCat(kind.name(), " parameter table: '", p.name, "' ", what));
    };
    if (f == nullptr) return err("is not a field of " + params->full_name());
    if (!seen.insert(p.name).second) return err("is declared twice");
    if (!f->has_presence()) return err("must be an optional field");
    if (TypeName(f) == "unsupported") return err("has an unsupported type");
    if (!p.choices.empty() && f->cpp_type() != FieldDescriptor::CPPTYPE_STRING)
      return err("has choices but is not a string");
    if (p.is_reference && f->cpp_type() != FieldDescriptor::CPPTYPE_STRING)
      return err("is a reference but is not a string");
    if (!p.default_value.empty()) {
      std::unique_ptr<Message> scratch(google::protobuf::MessageFactory::generated_factory()
                                           ->GetPrototype(params)->New());
      absl::Status s = SetParamFromText(scratch.get(), p.name, p.default_value);
      if (!s.ok()) return err(absl::StrCat("has a bad default: ", s.message()));
    }
  }
  for (int i = 0; i < params->field_count(); ++i) {
    if (!seen.count(params->field(i)->name())) {
      return absl::InternalError(absl::StrCat(kind.name(), " parameter table lacks field '",
                                              params->field(i)->name(), "'"));
    }
  }
  return absl::OkStatus();
}

}  // namespace loupe
