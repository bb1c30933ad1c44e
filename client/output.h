// Output formatting shared by the commands: JSON for --json, and the pieces
// of human output (tables, sizes, times, states, progress cells).
//
// --json prints one JSON document per line: protobuf messages go through
// MessageToJsonString with proto field names and every primitive field.
#ifndef LOUPE_CLIENT_OUTPUT_H_
#define LOUPE_CLIENT_OUTPUT_H_

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"
#include "loupe/v1/jobs.pb.h"
#include "nlohmann/json.hpp"

namespace loupe::cli {

// `message` as one line of JSON (proto field names, defaults included).
std::string ToJson(const google::protobuf::Message& message);
// The same, parsed, to embed in a larger document.
nlohmann::json ToJsonValue(const google::protobuf::Message& message);
// Writes ToJson(message) and a newline, then flushes.
void PrintJsonLine(std::ostream& out, const google::protobuf::Message& message);
void PrintJsonLine(std::ostream& out, const nlohmann::json& value);

// Left-aligned columns separated by two spaces, a header row first, no
// trailing blanks; every line ends with '\n'. Short rows are padded with
// empty cells.
std::string FormatTable(const std::vector<std::string>& headers,
                        const std::vector<std::vector<std::string>>& rows);

// "0 B", "512 B", "1.5 KiB", "12.3 MiB", "2.0 GiB".
std::string FormatBytes(int64_t bytes);

// "QUEUED", "RUNNING", …; "UNKNOWN" for unspecified.
std::string StateName(loupe::v1::JobState state);
bool IsFinalState(loupe::v1::JobState state);

// "2024-05-01 12:03:04" in `tz`; "-" when unset.
std::string FormatTimestamp(const google::protobuf::Timestamp& ts,
                            absl::TimeZone tz = absl::LocalTimeZone());
// Time since `ts` in one unit, rounded down: "45s", "12m", "3h", "5d"; "-"
// when unset.
std::string FormatAge(const google::protobuf::Timestamp& ts, absl::Time now);
absl::Time FromProtoTimestamp(const google::protobuf::Timestamp& ts);

// "1234/3000 41%", "1234" when the total is unknown, "-" before any step.
std::string FormatProgressCell(int64_t step, int64_t total);

// A metric value in `digits` significant digits: 0.0123, 31.8, 1.235e+05.
std::string FormatMetricValue(double value, int digits = 4);

// "d_model=64 k=32": the fields set in a kind's parameter message.
std::string FormatParams(const google::protobuf::Message& params);

// "a=1, b=2", sorted by key.
std::string FormatLabels(const google::protobuf::Map<std::string, std::string>& labels);

// Metrics sorted by key, as "  name  value" lines (aligned).
std::string FormatMetricsBlock(const std::map<std::string, double>& metrics,
                               const std::string& indent = "  ");

}  // namespace loupe::cli

#endif  // LOUPE_CLIENT_OUTPUT_H_
