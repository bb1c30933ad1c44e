#include "absl/strings/string_view.h"
#include "workers/runtime/registry.h"

#include "absl/strings/str_cat.h"
#include "workers/runtime/params.h"

namespace loupe {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

absl::Status KindRegistry::Add(std::unique_ptr<JobKind> kind) {
  const std::string name = kind->name();
  if (by_name_.count(name)) {
    return absl::AlreadyExistsError(absl::StrCat("job kind '", name, "' registered twice"));
  }
  const FieldDescriptor* f =
      loupe::v1::JobSpec::descriptor()->FindFieldByName(SpecFieldName(name));
  if (f == nullptr || f->message_type() == nullptr) {
    return absl::InternalError(absl::StrCat("job kind '", name, "' has no JobSpec field '",
                                            SpecFieldName(name), "'"));
  }
  if (absl::Status s = CheckParamTable(*kind, f->message_type()); !s.ok()) return s;
  by_field_[f->name()] = kind.get();
  by_name_[name] = std::move(kind);
  return absl::OkStatus();
}

const JobKind* KindRegistry::Find(absl::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second.get();
}

const JobKind* KindRegistry::ForSpec(const loupe::v1::JobSpec& spec) const {
  auto it = by_field_.find(SetSpecField(spec));
  return it == by_field_.end() ? nullptr : it->second;
}

std::vector<const JobKind*> KindRegistry::All() const {
  std::vector<const JobKind*> out;
  for (const auto& [_, k] : by_name_) out.push_back(k.get());
  return out;
}

std::vector<std::string> KindRegistry::Names() const {
  std::vector<std::string> out;
  for (const auto& [n, _] : by_name_) out.push_back(n);
  return out;
}

const Descriptor* KindRegistry::ParamsDescriptor(const JobKind& kind) const {
  return loupe::v1::JobSpec::descriptor()
      ->FindFieldByName(SpecFieldName(kind.name()))
      ->message_type();
}

}  // namespace loupe
