// DURATION flags ("90s", "10m", "1h30m", "2d", "45") and short duration text.
#ifndef LOUPE_CLIENT_DURATION_H_
#define LOUPE_CLIENT_DURATION_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"

namespace loupe::cli {

// Parses a positive, finite duration: plain seconds ("45", "1.5"), Go-style
// units as absl::ParseDuration takes them ("90s", "10m", "1h30m", "250ms"),
// optionally after whole days ("2d", "1d12h"). INVALID_ARGUMENT otherwise,
// with a message that shows the accepted forms.
absl::StatusOr<absl::Duration> ParseDurationFlag(const std::string& text);

google::protobuf::Duration ToProtoDuration(absl::Duration d);
absl::Duration FromProtoDuration(const google::protobuf::Duration& d);

// Compact text for humans, two units at most: "12s", "3m05s", "1h02m",
// "2d03h"; sub-second values as "0s". Negative durations read as "0s".
std::string FormatDurationShort(absl::Duration d);

}  // namespace loupe::cli

#endif  // LOUPE_CLIENT_DURATION_H_
