#include "client/output.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"
#include "workers/runtime/params.h"

namespace loupe::cli {

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = false;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    // Only possible for broken messages (e.g. an Any without its type).
    nlohmann::json err = {{"error", std::string(status.message().data(), status.message().size())}};
    return err.dump();
  }
  return json;
}

nlohmann::json ToJsonValue(const google::protobuf::Message& message) {
  return nlohmann::json::parse(ToJson(message));
}

void PrintJsonLine(std::ostream& out, const google::protobuf::Message& message) {
  out << ToJson(message) << "\n";
  out.flush();
}

void PrintJsonLine(std::ostream& out, const nlohmann::json& value) {
  out << value.dump() << "\n";
  out.flush();
}

std::string FormatTable(const std::vector<std::string>& headers,
                        const std::vector<std::vector<std::string>>& rows) {
  size_t ncols = headers.size();
  for (const auto& r : rows) ncols = std::max(ncols, r.size());
  std::vector<size_t> width(ncols, 0);
  auto cell = [](const std::vector<std::string>& row, size_t i) -> const std::string& {
    static const std::string kEmpty;
    return i < row.size() ? row[i] : kEmpty;
  };
  for (size_t i = 0; i < ncols; ++i) {
    width[i] = cell(headers, i).size();
    for (const auto& r : rows) width[i] = std::max(width[i], cell(r, i).size());
  }
  std::string out;
  auto emit = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < ncols; ++i) {
      const std::string& c = cell(row, i);
      line += c;
      if (i + 1 < ncols) line.append(width[i] - c.size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line;
    out += '\n';
  };
  emit(headers);
  for (const auto& r : rows) emit(r);
  return out;
}

std::string FormatBytes(int64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  static const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int u = -1;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return absl::StrFormat("%.1f %s", v, kUnits[u]);
}

std::string StateName(loupe::v1::JobState state) {
  if (state == loupe::v1::JOB_STATE_UNSPECIFIED) return "UNKNOWN";
  const std::string& n = loupe::v1::JobState_Name(state);
  return n.empty() ? absl::StrCat("STATE_", static_cast<int>(state)) : n;
}

bool IsFinalState(loupe::v1::JobState state) {
  return state == loupe::v1::SUCCEEDED || state == loupe::v1::FAILED ||
         state == loupe::v1::CANCELLED;
}

absl::Time FromProtoTimestamp(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

static bool IsSet(const google::protobuf::Timestamp& ts) {
  return ts.seconds() != 0 || ts.nanos() != 0;
}

std::string FormatTimestamp(const google::protobuf::Timestamp& ts, absl::TimeZone tz) {
  if (!IsSet(ts)) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", FromProtoTimestamp(ts), tz);
}

std::string FormatAge(const google::protobuf::Timestamp& ts, absl::Time now) {
  if (!IsSet(ts)) return "-";
  int64_t s = absl::ToInt64Seconds(now - FromProtoTimestamp(ts));
  if (s < 0) s = 0;
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrCat(s / 60, "m");
  if (s < 86400) return absl::StrCat(s / 3600, "h");
  return absl::StrCat(s / 86400, "d");
}

std::string FormatProgressCell(int64_t step, int64_t total) {
  if (total > 0) {
    int64_t pct = std::clamp<int64_t>(step * 100 / total, 0, 100);
    return absl::StrCat(step, "/", total, " ", pct, "%");
  }
  if (step > 0) return absl::StrCat(step);
  return "-";
}

std::string FormatMetricValue(double value, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, value);
  return buf;
}

std::string FormatParams(const google::protobuf::Message& params) {
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  params.GetReflection()->ListFields(params, &fields);
  std::vector<std::string> parts;
  for (const auto* f : fields) {
    parts.push_back(absl::StrCat(f->name(), "=", loupe::ParamValueText(params, f->name())));
  }
  return absl::StrJoin(parts, " ");
}

std::string FormatLabels(const google::protobuf::Map<std::string, std::string>& labels) {
  std::map<std::string, std::string> sorted(labels.begin(), labels.end());
  std::vector<std::string> parts;
  for (const auto& [k, v] : sorted) parts.push_back(absl::StrCat(k, "=", v));
  return absl::StrJoin(parts, ", ");
}

std::string FormatMetricsBlock(const std::map<std::string, double>& metrics,
                               const std::string& indent) {
  size_t w = 0;
  for (const auto& [k, v] : metrics) w = std::max(w, k.size());
  std::string out;
  for (const auto& [k, v] : metrics) {
    absl::StrAppend(&out, indent, k, std::string(w - k.size() + 2, ' '), FormatMetricValue(v, 6),
                    "\n");
  }
  return out;
}

}  // namespace loupe::cli
