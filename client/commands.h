// The commands of `loupe`. Each takes the Context (stub, streams, --json)
// and its own flags, returns the exit code, and throws CliError on failure
// (wrap calls in RunGuarded). None reads global state, so a test can drive
// one against any JobService::StubInterface.
#ifndef LOUPE_CLIENT_COMMANDS_H_
#define LOUPE_CLIENT_COMMANDS_H_

#include <string>
#include <vector>

#include "client/context.h"
#include "client/spec_builder.h"
#include "loupe/v1/service.pb.h"

namespace loupe::cli {

struct ListFlags {
  std::string state;  // empty: any
  std::string kind;
  std::string owner;  // "*": every user (admins)
  std::string label;  // "key" or "key=value"
  int limit = 50;
};

struct DownloadFlags {
  std::string job_id;
  std::string name;    // artifact name
  std::string output;  // file or directory; empty: the artifact's base name
};

struct UploadFlags {
  std::string file;
  std::string name;  // empty: the file's base name
};

// submit KIND [...]: builds the spec (see spec_builder.h), submits it, prints
// the job; with flags.watch, then watches it (exit code from the final state).
int RunSubmit(Context& ctx, const SubmitFlags& flags);
int RunGet(Context& ctx, const std::string& job_id);
int RunList(Context& ctx, const ListFlags& flags);
// Follows a job to its end; exit code from the final state (exit_codes.h).
int RunWatch(Context& ctx, const std::string& job_id);
int RunCancel(Context& ctx, const std::string& job_id);
int RunResult(Context& ctx, const std::string& job_id);
int RunArtifacts(Context& ctx, const std::string& job_id);
int RunDownload(Context& ctx, const DownloadFlags& flags);
int RunUpload(Context& ctx, const UploadFlags& flags);
// kinds: every kind; kinds KIND: its parameters, result fields, artifacts.
int RunKinds(Context& ctx, const std::string& kind);

// ListJobKinds; throws CliError on failure.
std::vector<loupe::v1::JobKindInfo> FetchKinds(Context& ctx, const std::string& kind = "");

// The job's result; throws CliError on failure.
loupe::v1::JobResult FetchResult(Context& ctx, const std::string& job_id);

// Human text of `get`: one "label: value" line per field that is set.
std::string FormatJobDetails(const loupe::v1::Job& job, absl::Time now);
// Human table of `list`.
std::string FormatJobTable(const std::vector<loupe::v1::Job>& jobs, absl::Time now);
// Human parameter table of `kinds KIND`.
std::string FormatKindDetails(const loupe::v1::JobKindInfo& kind);

}  // namespace loupe::cli

#endif  // LOUPE_CLIENT_COMMANDS_H_
