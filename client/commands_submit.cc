// submit KIND [--param k=v]... [-f spec.json] [...] [--watch].
#include <algorithm>
#include <iterator>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "client/commands.h"
#include "client/exit_codes.h"
#include "client/file_util.h"
#include "client/output.h"

namespace loupe::cli {

namespace {

std::string ReadSpecFile(Context& ctx, const std::string& path) {
  if (path.empty()) return "";
  if (path == "-") {
    std::ostringstream ss;
    ss << ctx.in->rdbuf();
    return ss.str();
  }
  auto text = ReadFileToString(path);
  if (!text.ok()) throw CliError(kExitUsage, absl::StrCat("-f: ", text.status().message()));
  return *std::move(text);
}

// BuildJobSpec said this client has no such kind: ask the server which kinds
// exist, to suggest the right name.
[[noreturn]] void ThrowUnknownKind(Context& ctx, const std::string& kind) {
  std::vector<std::string> known;
  try {
    for (const auto& k : FetchKinds(ctx)) known.push_back(k.name());
  } catch (const CliError& e) {
    throw CliError(kExitUsage, absl::StrCat(UnknownKindMessage(kind, {}),
                                            " (could not list the server's kinds: ", e.what(), ")"));
  }
  if (std::find(known.begin(), known.end(), kind) != known.end()) {
    throw CliError(kExitUsage, absl::StrCat("job kind '", kind,
                                            "' is offered by the server but unknown to this "
                                            "loupe client; update the client"));
  }
  throw CliError(kExitUsage, UnknownKindMessage(kind, known));
}

}  // namespace

int RunSubmit(Context& ctx, const SubmitFlags& flags) {
  const std::string json = ReadSpecFile(ctx, flags.spec_file);
  auto spec = BuildJobSpec(flags, json);
  if (absl::IsNotFound(spec.status())) ThrowUnknownKind(ctx, flags.kind);
  if (!spec.ok()) throw CliError(kExitUsage, std::string(spec.status().message()));

  loupe::v1::SubmitJobRequest req;
  *req.mutable_spec() = *std::move(spec);
  loupe::v1::Job job;
  auto call = ctx.NewCall();
  grpc::Status st = ctx.stub->SubmitJob(call.get(), req, &job);
  if (!st.ok()) throw RpcError(ctx, st, "submit job");

  if (ctx.json) {
    PrintJsonLine(ctx.Out(), job);
  } else {
    ctx.Out() << "submitted job " << job.id() << " (" << job.kind() << ")\n";
    ctx.Out().flush();
  }
  if (!flags.watch) return kExitOk;
  if (ctx.tty && !ctx.json) {
    ctx.Err() << "watching; Ctrl-C stops watching, not the job (loupe cancel " << job.id() << ")\n";
  }
  return RunWatch(ctx, job.id());
}

}  // namespace loupe::cli
