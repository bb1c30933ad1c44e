// KindRegistry: the job kinds a server offers, looked up by name or by the
// JobSpec field that carries their parameters.
//
// Filled once at start-up (RegisterBuiltinKinds), then only read: const
// methods are safe from any thread without locking.
#ifndef LOUPE_WORKERS_RUNTIME_REGISTRY_H_
#define LOUPE_WORKERS_RUNTIME_REGISTRY_H_

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/status/status.h"
#include "loupe/v1/jobs.pb.h"
#include "workers/runtime/job_kind.h"

namespace loupe {

class KindRegistry {
 public:
  // Fails if the name is taken, JobSpec has no field for it, or its
  // parameter table does not match its message.
  absl::Status Add(std::unique_ptr<JobKind> kind);

  const JobKind* Find(absl::string_view name) const;
  // The kind whose parameters are set in `spec`, or nullptr.
  const JobKind* ForSpec(const loupe::v1::JobSpec& spec) const;
  // Sorted by name.
  std::vector<const JobKind*> All() const;
  std::vector<std::string> Names() const;
  const google::protobuf::Descriptor* ParamsDescriptor(
      const JobKind& kind) const;

 private:
  std::map<std::string, std::unique_ptr<JobKind>, std::less<>> by_name_;
  std::map<std::string, const JobKind*, std::less<>> by_field_;
};

// Adds every kind Loupe ships (workers/all_kinds.cc: one line per kind).
absl::Status RegisterBuiltinKinds(KindRegistry& registry);

}  // namespace loupe

#endif  // LOUPE_WORKERS_RUNTIME_REGISTRY_H_
