#include "absl/strings/string_view.h"
#include "server/references.h"

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "server/store/store.h"

namespace loupe {
namespace fs = std::filesystem;

bool IsValidArtifactName(absl::string_view name) {
  if (name.empty() || name.size() > 128 || name == "." || name == "..") return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

namespace {

bool IsUnder(const fs::path& p, const fs::path& root) {
  auto pi = p.begin();
  for (auto ri = root.begin(); ri != root.end(); ++ri, ++pi) {
    if (ri->empty()) continue;  // trailing separator
    if (pi == p.end() || *pi != *ri) return false;
  }
  return true;
}

absl::StatusOr<std::string> CheckPath(absl::string_view text,
                                      const std::vector<std::string>& roots) {
  fs::path p{std::string(text)};
  if (!p.is_absolute()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", text, "' is not a reference: use dataset:ID, job:ID, job:ID/NAME or an absolute "
        "server path"));
  }
  for (const auto& part : p) {
    if (part == "..") {
      return absl::InvalidArgumentError(absl::StrCat("path '", text, "' contains '..'"));
    }
  }
  if (roots.empty()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "path '", text, "' refused: this server allows no server paths (start it with "
        "--allowed-root)"));
  }
  std::error_code ec;
  fs::path canon = fs::canonical(p, ec);
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat("path '", text, "': ", ec.message()));
  }
  for (const auto& r : roots) {
    fs::path root = fs::weakly_canonical(fs::path(r), ec);
    if (!ec && IsUnder(canon, root)) return canon.string();
  }
  return absl::PermissionDeniedError(absl::StrCat("path '", text, "' is outside the allowed roots (",
                                                  absl::StrJoin(roots, ", "), ")"));
}

}  // namespace

absl::StatusOr<Reference> ParseReference(absl::string_view text,
                                         const std::vector<std::string>& allowed_roots) {
  Reference ref;
  if (absl::StartsWith(text, "dataset:")) {
    ref.type = Reference::Type::kDataset;
    ref.id = std::string(text.substr(8));
    if (ref.id.empty() || ref.id.size() > 64 ||
        ref.id.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not a valid dataset id"));
    }
    return ref;
  }
  if (absl::StartsWith(text, "job:")) {
    absl::string_view rest = text.substr(4);
    size_t slash = rest.find('/');
    ref.id = std::string(rest.substr(0, slash));
    if (!store::LooksLikeJobId(ref.id)) {
      return absl::InvalidArgumentError(absl::StrCat("'", text, "' does not name a job id"));
    }
    if (slash == absl::string_view::npos) {
      ref.type = Reference::Type::kJob;
      return ref;
    }
    ref.type = Reference::Type::kJobArtifact;
    ref.name = std::string(rest.substr(slash + 1));
    if (!IsValidArtifactName(ref.name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", text, "': '", ref.name, "' is not a valid artifact name"));
    }
    return ref;
  }
  absl::StatusOr<std::string> path = CheckPath(text, allowed_roots);
  if (!path.ok()) return path.status();
  ref.type = Reference::Type::kPath;
  ref.path = *path;
  return ref;
}

}  // namespace loupe
