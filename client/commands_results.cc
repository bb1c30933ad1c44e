// result, artifacts, download.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/commands.h"
#include "client/exit_codes.h"
#include "client/file_util.h"
#include "client/output.h"
#include "workers/runtime/params.h"

namespace loupe::cli {

namespace fs = std::filesystem;
using loupe::v1::Artifact;
using loupe::v1::JobResult;

namespace {

std::string ArtifactTable(const JobResult& r) {
  std::vector<std::vector<std::string>> rows;
  for (const Artifact& a : r.artifacts()) {
    rows.push_back({a.name(), FormatBytes(a.size()), a.sha256().empty() ? "-" : a.sha256(),
                    a.media_type().empty() ? "-" : a.media_type()});
  }
  return FormatTable({"NAME", "SIZE", "SHA256", "MEDIA TYPE"}, rows);
}

std::map<std::string, double> SortedMetrics(const JobResult& r) {
  return std::map<std::string, double>(r.metrics().begin(), r.metrics().end());
}

}  // namespace

JobResult FetchResult(Context& ctx, const std::string& job_id) {
  loupe::v1::GetResultRequest req;
  req.set_id(job_id);
  JobResult result;
  auto call = ctx.NewCall();
  grpc::Status st = ctx.stub->GetResult(call.get(), req, &result);
  if (!st.ok()) throw RpcError(ctx, st, absl::StrCat("get result of job ", job_id));
  return result;
}

int RunResult(Context& ctx, const std::string& job_id) {
  JobResult r = FetchResult(ctx, job_id);
  if (ctx.json) {
    PrintJsonLine(ctx.Out(), r);
    return kExitOk;
  }
  std::ostream& out = ctx.Out();
  out << "job " << (r.job_id().empty() ? job_id : r.job_id()) << ": " << StateName(r.state());
  if (r.attempt() > 0) out << " (attempt " << r.attempt() << ")";
  out << "\n";
  if (!r.error().empty()) out << "error: " << r.error() << "\n";
  if (r.metrics_size() > 0) out << "metrics:\n" << FormatMetricsBlock(SortedMetrics(r));
  if (r.artifacts_size() > 0) {
    out << "artifacts:\n" << ArtifactTable(r);
  }
  return kExitOk;
}

int RunArtifacts(Context& ctx, const std::string& job_id) {
  JobResult r = FetchResult(ctx, job_id);
  if (ctx.json) {
    nlohmann::json artifacts = nlohmann::json::array();
    for (const Artifact& a : r.artifacts()) artifacts.push_back(ToJsonValue(a));
    PrintJsonLine(ctx.Out(), nlohmann::json{{"job_id", r.job_id().empty() ? job_id : r.job_id()},
                                            {"artifacts", artifacts}});
    return kExitOk;
  }
  if (r.artifacts_size() == 0) {
    ctx.Out() << "job " << job_id << " has no artifacts"
              << (IsFinalState(r.state()) ? "" : absl::StrCat(" yet (", StateName(r.state()), ")"))
              << "\n";
    return kExitOk;
  }
  ctx.Out() << ArtifactTable(r);
  return kExitOk;
}

int RunDownload(Context& ctx, const DownloadFlags& flags) {
  JobResult result = FetchResult(ctx, flags.job_id);
  const Artifact* art = nullptr;
  std::vector<std::string> names;
  for (const Artifact& a : result.artifacts()) {
    names.push_back(a.name());
    if (a.name() == flags.name) art = &a;
  }
  if (art == nullptr) {
    std::string hint = loupe::SuggestName(flags.name, names);
    throw CliError(kExitNotFound,
                   absl::StrCat("job ", flags.job_id, " has no artifact '", flags.name, "'",
                                hint.empty() ? "" : absl::StrCat("; did you mean '", hint, "'?"),
                                names.empty() ? " (it has none)"
                                              : absl::StrCat(" (artifacts: ", absl::StrJoin(names, ", "), ")")));
  }

  fs::path output = flags.output.empty() ? fs::path(BaseName(art->name())) : fs::path(flags.output);
  std::error_code ec;
  if (fs::is_directory(output, ec)) output /= BaseName(art->name());
  const fs::path part = output.string() + ".part";

  int64_t pos = 0;
  if (fs::exists(part, ec)) {
    pos = static_cast<int64_t>(fs::file_size(part, ec));
    if (ec) throw CliError(kExitLocalIo, absl::StrCat("cannot read ", part.string(), ": ", ec.message()));
    if (art->size() > 0 && pos > art->size()) {
      ctx.Err() << "loupe: " << part.string() << " is larger than the artifact; starting over\n";
      pos = 0;
    }
  }
  const int64_t resumed_from = pos;
  {
    std::ofstream file(part, pos > 0 ? std::ios::binary | std::ios::app
                                     : std::ios::binary | std::ios::trunc);
    if (!file) throw CliError(kExitLocalIo, absl::StrCat("cannot write ", part.string()));
    if (pos > 0 && !ctx.json) {
      ctx.Err() << "loupe: resuming " << part.string() << " at " << FormatBytes(pos) << "\n";
    }

    int retries_left = ctx.max_reconnects;
    absl::Duration backoff = ctx.reconnect_backoff;
    // art->size() == 0 may mean "unknown": read once to the end then.
    bool done = art->size() > 0 && pos >= art->size();
    while (!done) {
      loupe::v1::ReadArtifactRequest req;
      req.set_job_id(flags.job_id);
      req.set_name(art->name());
      req.set_offset(pos);
      auto call = ctx.NewCall(/*streaming=*/true);
      auto reader = ctx.stub->ReadArtifact(call.get(), req);
      loupe::v1::ArtifactChunk chunk;
      bool progressed = false;
      while (reader->Read(&chunk)) {
        if (chunk.offset() != pos) {
          call->TryCancel();
          reader->Finish();
          throw CliError(kExitServerError,
                         absl::StrCat("download ", art->name(), ": the server sent bytes at offset ",
                                      chunk.offset(), ", expected ", pos));
        }
        file.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
        if (!file) {
          call->TryCancel();
          reader->Finish();
          throw CliError(kExitLocalIo, absl::StrCat("cannot write ", part.string()));
        }
        pos += static_cast<int64_t>(chunk.data().size());
        progressed |= !chunk.data().empty();
      }
      grpc::Status st = reader->Finish();
      if (st.ok()) {
        done = true;
      } else if (IsRetryableStreamStatus(st) && retries_left > 0) {
        file.flush();
        if (progressed) {
          retries_left = ctx.max_reconnects;
          backoff = ctx.reconnect_backoff;
        }
        --retries_left;
        ctx.Err() << "loupe: download interrupted (" << st.error_message() << "); resuming at "
                  << pos << " in " << absl::FormatDuration(backoff) << "\n";
        ctx.sleep(backoff);
        backoff = std::min(backoff * 2, absl::Seconds(10));
      } else {
        file.flush();
        throw RpcError(ctx, st, absl::StrCat("download ", art->name(), " of job ", flags.job_id));
      }
    }
    file.flush();
    if (!file) throw CliError(kExitLocalIo, absl::StrCat("cannot write ", part.string()));
  }

  if (art->size() > 0 && pos != art->size()) {
    if (pos > art->size()) fs::remove(part, ec);
    throw CliError(kExitLocalIo, absl::StrCat("download ", art->name(), ": got ", pos,
                                              " bytes, expected ", art->size(),
                                              pos < art->size() ? " (run again to resume)" : ""));
  }
  auto sha = Sha256File(part.string());
  if (!sha.ok()) throw CliError(kExitLocalIo, std::string(sha.status().message()));
  if (!art->sha256().empty() && *sha != art->sha256()) {
    fs::remove(part, ec);
    throw CliError(kExitLocalIo,
                   absl::StrCat("checksum mismatch for ", art->name(), ": expected sha256 ",
                                art->sha256(), ", got ", *sha, " (partial file removed; run again)"));
  }
  if (art->sha256().empty()) {
    ctx.Err() << "loupe: warning: the server gave no sha256 for " << art->name()
              << "; not verified\n";
  }
  fs::rename(part, output, ec);
  if (ec) {
    throw CliError(kExitLocalIo, absl::StrCat("cannot rename ", part.string(), " to ",
                                              output.string(), ": ", ec.message()));
  }

  if (ctx.json) {
    PrintJsonLine(ctx.Out(), nlohmann::json{{"job_id", flags.job_id},
                                            {"name", art->name()},
                                            {"path", output.string()},
                                            {"size", pos},
                                            {"sha256", *sha},
                                            {"verified", !art->sha256().empty()},
                                            {"resumed_from", resumed_from}});
  } else {
    ctx.Out() << "downloaded " << art->name() << " (" << FormatBytes(pos) << ") to "
              << output.string() << (art->sha256().empty() ? "" : ", sha256 verified") << "\n";
  }
  return kExitOk;
}

}  // namespace loupe::cli
