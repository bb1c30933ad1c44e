// kinds [KIND].
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/commands.h"
#include "client/exit_codes.h"
#include "client/output.h"

namespace loupe::cli {

using loupe::v1::JobKindInfo;

namespace {

std::string FormatBound(double v) { return FormatMetricValue(v, 10); }

std::string Bounds(const loupe::v1::ParamInfo& p) {
  if (p.has_min() && p.has_max()) return absl::StrCat("[", FormatBound(p.min()), ", ", FormatBound(p.max()), "]");
  if (p.has_min()) return absl::StrCat(">= ", FormatBound(p.min()));
  if (p.has_max()) return absl::StrCat("<= ", FormatBound(p.max()));
  return "-";
}

std::vector<std::string> Names(const std::vector<JobKindInfo>& kinds) {
  std::vector<std::string> names;
  for (const auto& k : kinds) names.push_back(k.name());
  return names;
}

}  // namespace

std::vector<JobKindInfo> FetchKinds(Context& ctx, const std::string& kind) {
  loupe::v1::ListJobKindsRequest req;
  req.set_kind(kind);
  loupe::v1::ListJobKindsResponse resp;
  auto call = ctx.NewCall();
  grpc::Status st = ctx.stub->ListJobKinds(call.get(), req, &resp);
  if (!st.ok()) throw RpcError(ctx, st, "list job kinds");
  std::vector<JobKindInfo> kinds(resp.kinds().begin(), resp.kinds().end());
  std::sort(kinds.begin(), kinds.end(),
            [](const JobKindInfo& a, const JobKindInfo& b) { return a.name() < b.name(); });
  return kinds;
}

std::string FormatKindDetails(const JobKindInfo& kind) {
  std::string out = absl::StrCat(kind.name(), ": ", kind.description(), "\n");
  if (kind.params_size() == 0) {
    absl::StrAppend(&out, "\nno parameters\n");
  } else {
    bool any_choices = false;
    for (const auto& p : kind.params()) any_choices |= p.choices_size() > 0;
    std::vector<std::string> headers = {"NAME", "TYPE", "DEFAULT", "BOUNDS"};
    if (any_choices) headers.push_back("CHOICES");
    headers.push_back("HELP");
    std::vector<std::vector<std::string>> rows;
    for (const auto& p : kind.params()) {
      std::vector<std::string> row = {p.name(), p.is_reference() ? p.type() + " (ref)" : p.type(),
                                      p.default_value().empty() ? "-" : p.default_value(), Bounds(p)};
      if (any_choices) row.push_back(p.choices_size() ? absl::StrJoin(p.choices(), "|") : "-");
      row.push_back(p.help());
      rows.push_back(std::move(row));
    }
    absl::StrAppend(&out, "\nparameters (--param NAME=VALUE):\n", FormatTable(headers, rows));
  }
  if (kind.result_fields_size()) {
    absl::StrAppend(&out, "\nresult fields: ", absl::StrJoin(kind.result_fields(), ", "), "\n");
  }
  if (kind.artifacts_size()) {
    absl::StrAppend(&out, "artifacts: ", absl::StrJoin(kind.artifacts(), ", "), "\n");
  }
  bool any_ref = false;
  for (const auto& p : kind.params()) any_ref |= p.is_reference();
  if (any_ref) {
    absl::StrAppend(&out, "\n(ref): takes dataset:ID, job:ID[/NAME] or a path the server allows\n");
  }
  return out;
}

int RunKinds(Context& ctx, const std::string& kind) {
  if (kind.empty()) {
    std::vector<JobKindInfo> kinds = FetchKinds(ctx);
    if (ctx.json) {
      loupe::v1::ListJobKindsResponse resp;
      for (const auto& k : kinds) *resp.add_kinds() = k;
      PrintJsonLine(ctx.Out(), resp);
      return kExitOk;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& k : kinds) rows.push_back({k.name(), k.description()});
    ctx.Out() << FormatTable({"KIND", "DESCRIPTION"}, rows);
    return kExitOk;
  }

  // A server may answer NOT_FOUND or INVALID_ARGUMENT for an unknown kind, or
  // ignore the filter: look for the name ourselves either way.
  std::vector<JobKindInfo> kinds;
  try {
    kinds = FetchKinds(ctx, kind);
  } catch (const CliError& e) {
    if (e.exit_code() != kExitNotFound && e.exit_code() != kExitInvalidArgument) throw;
  }
  auto it = std::find_if(kinds.begin(), kinds.end(),
                         [&](const JobKindInfo& k) { return k.name() == kind; });
  if (it == kinds.end()) {
    throw CliError(kExitUsage, UnknownKindMessage(kind, Names(FetchKinds(ctx))));
  }
  if (ctx.json) {
    PrintJsonLine(ctx.Out(), *it);
  } else {
    ctx.Out() << FormatKindDetails(*it);
  }
  return kExitOk;
}

}  // namespace loupe::cli
