// get, list, cancel.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/commands.h"
#include "client/duration.h"
#include "client/exit_codes.h"
#include "client/output.h"
#include "workers/runtime/params.h"

namespace loupe::cli {

using loupe::v1::Job;

namespace {

// Page size asked of the server; it may cap it lower.
constexpr int kMaxPageSize = 200;

}  // namespace

std::string FormatJobDetails(const Job& job, absl::Time now) {
  std::vector<std::pair<std::string, std::string>> rows;
  auto add = [&](const std::string& k, const std::string& v) {
    if (!v.empty()) rows.emplace_back(k, v);
  };
  add("id", job.id());
  add("kind", job.kind());
  const int max_attempts = job.spec().max_attempts();
  add("state", absl::StrCat(StateName(job.state()),
                            job.attempt() > 0
                                ? absl::StrCat(" (attempt ", job.attempt(),
                                               max_attempts > 0 ? absl::StrCat(" of ", max_attempts) : "",
                                               ")")
                                : ""));
  add("owner", job.owner());
  auto when = [&](const google::protobuf::Timestamp& ts) -> std::string {
    if (ts.seconds() == 0 && ts.nanos() == 0) return "";
    return absl::StrCat(FormatTimestamp(ts), " (", FormatAge(ts, now), " ago)");
  };
  add("created", when(job.created_at()));
  add("started", when(job.started_at()));
  add("finished", when(job.finished_at()));
  if (job.progress_step() > 0 || job.progress_total() > 0) {
    add("progress", FormatProgressCell(job.progress_step(), job.progress_total()));
  }
  if (const auto* params = loupe::KindParams(job.spec())) {
    std::string p = FormatParams(*params);
    add("params", p.empty() ? "(defaults)" : p);
  }
  add("priority", absl::StrCat(job.spec().priority()));
  if (job.spec().has_time_limit()) {
    add("time limit", FormatDurationShort(FromProtoDuration(job.spec().time_limit())));
  }
  add("labels", FormatLabels(job.spec().labels()));
  add("idempotency", job.spec().idempotency_key());
  add("depends on", absl::StrJoin(job.depends_on(), ", "));
  add("error", job.error());
  size_t w = 0;
  for (const auto& [k, v] : rows) w = std::max(w, k.size());
  std::string out;
  for (const auto& [k, v] : rows) absl::StrAppend(&out, k, ":", std::string(w - k.size() + 2, ' '), v, "\n");
  return out;
}

std::string FormatJobTable(const std::vector<Job>& jobs, absl::Time now) {
  std::vector<std::vector<std::string>> rows;
  for (const Job& j : jobs) {
    rows.push_back({j.id(), j.kind(), StateName(j.state()),
                    j.attempt() > 0 ? absl::StrCat(j.attempt()) : "-",
                    FormatProgressCell(j.progress_step(), j.progress_total()),
                    FormatAge(j.created_at(), now), j.owner()});
  }
  return FormatTable({"ID", "KIND", "STATE", "ATTEMPT", "PROGRESS", "AGE", "OWNER"}, rows);
}

int RunGet(Context& ctx, const std::string& job_id) {
  loupe::v1::GetJobRequest req;
  req.set_id(job_id);
  Job job;
  auto call = ctx.NewCall();
  grpc::Status st = ctx.stub->GetJob(call.get(), req, &job);
  if (!st.ok()) throw RpcError(ctx, st, absl::StrCat("get job ", job_id));
  if (ctx.json) {
    PrintJsonLine(ctx.Out(), job);
  } else {
    ctx.Out() << FormatJobDetails(job, ctx.now());
  }
  return kExitOk;
}

int RunList(Context& ctx, const ListFlags& flags) {
  if (flags.limit <= 0) throw CliError(kExitUsage, "--limit must be positive");
  loupe::v1::ListJobsRequest req;
  if (!flags.state.empty()) {
    auto state = ParseJobStateFlag(flags.state);
    if (!state.ok()) throw CliError(kExitUsage, absl::StrCat("--state: ", state.status().message()));
    req.set_state(*state);
  }
  req.set_kind(flags.kind);
  req.set_owner(flags.owner);
  req.set_label(flags.label);

  std::vector<Job> jobs;
  std::string next;
  do {
    req.set_page_size(std::min<int>(kMaxPageSize, flags.limit - static_cast<int>(jobs.size())));
    req.set_page_token(next);
    loupe::v1::ListJobsResponse resp;
    auto call = ctx.NewCall();
    grpc::Status st = ctx.stub->ListJobs(call.get(), req, &resp);
    if (!st.ok()) throw RpcError(ctx, st, "list jobs");
    for (const Job& j : resp.jobs()) {
      if (static_cast<int>(jobs.size()) < flags.limit) jobs.push_back(j);
    }
    next = resp.next_page_token();
    // A server that returns an empty page with a token would loop forever.
    if (resp.jobs_size() == 0) break;
  } while (!next.empty() && static_cast<int>(jobs.size()) < flags.limit);

  if (ctx.json) {
    loupe::v1::ListJobsResponse all;
    for (const Job& j : jobs) *all.add_jobs() = j;
    all.set_next_page_token(next);
    PrintJsonLine(ctx.Out(), all);
    return kExitOk;
  }
  if (jobs.empty()) {
    ctx.Out() << "no jobs\n";
    return kExitOk;
  }
  ctx.Out() << FormatJobTable(jobs, ctx.now());
  if (!next.empty()) {
    ctx.Err() << "(showing the first " << jobs.size() << " jobs; use --limit to see more)\n";
  }
  return kExitOk;
}

int RunCancel(Context& ctx, const std::string& job_id) {
  loupe::v1::CancelJobRequest req;
  req.set_id(job_id);
  Job job;
  auto call = ctx.NewCall();
  grpc::Status st = ctx.stub->CancelJob(call.get(), req, &job);
  if (!st.ok()) throw RpcError(ctx, st, absl::StrCat("cancel job ", job_id));
  if (ctx.json) {
    PrintJsonLine(ctx.Out(), job);
  } else if (job.state() == loupe::v1::CANCELLED) {
    ctx.Out() << "cancelled job " << job.id() << "\n";
  } else if (IsFinalState(job.state())) {
    ctx.Out() << "job " << job.id() << " had already finished: " << StateName(job.state()) << "\n";
  } else {
    ctx.Out() << "cancel requested for job " << job.id() << " (now " << StateName(job.state())
              << ")\n";
  }
  return kExitOk;
}

}  // namespace loupe::cli
