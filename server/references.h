// Parsing and checking of input references in job parameters.
//
// One syntax everywhere: `dataset:ID`, `job:ID` (all of a job's artifacts),
// `job:ID/NAME` (one artifact), or an absolute server path under one of the
// configured allowed roots. Pure functions; thread-safe.
#ifndef LOUPE_SERVER_REFERENCES_H_
#define LOUPE_SERVER_REFERENCES_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/status/statusor.h"

namespace loupe {

struct Reference {
  enum class Type { kDataset, kJob, kJobArtifact, kPath };
  Type type;
  std::string id;    // dataset or job id
  std::string name;  // artifact name (kJobArtifact)
  std::string path;  // canonical path (kPath)
};

// INVALID_ARGUMENT with the reason for anything malformed; paths must exist
// below an allowed root after resolving symlinks, and may not contain "..".
absl::StatusOr<Reference> ParseReference(absl::string_view text,
                                         const std::vector<std::string>& allowed_roots);

// True for names an artifact may have: [A-Za-z0-9._-]{1,128}, not "." or "..".
bool IsValidArtifactName(absl::string_view name);

}  // namespace loupe

#endif  // LOUPE_SERVER_REFERENCES_H_
