#include "client/duration.h"

#include <cmath>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace loupe::cli {

absl::StatusOr<absl::Duration> ParseDurationFlag(const std::string& text) {
  const std::string t(absl::StripAsciiWhitespace(text));
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid duration '", text, "'", why.empty() ? "" : ": ", why,
        why.empty() ? "" : "; ", "use e.g. 45 (seconds), 90s, 10m, 1h30m or 2d"));
  };
  if (t.empty()) return bad("");
  absl::Duration d;
  double seconds;
  if (absl::SimpleAtod(t, &seconds) && std::isfinite(seconds) &&
      t.find_first_of("eEnNiI") == std::string::npos) {
    d = absl::Seconds(seconds);
  } else {
    absl::string_view rest = t;
    absl::Duration days = absl::ZeroDuration();
    // Whole days: absl::ParseDuration stops at hours.
    size_t dpos = rest.find('d');
    if (dpos != absl::string_view::npos && dpos > 0) {
      int64_t n;
      if (!absl::SimpleAtoi(rest.substr(0, dpos), &n) || n < 0) return bad("");
      days = absl::Hours(24 * n);
      rest.remove_prefix(dpos + 1);
    }
    if (rest.empty()) {
      d = days;
    } else {
      absl::Duration part;
      if (!absl::ParseDuration(rest, &part) || rest == "inf" || rest == "-inf") return bad("");
      // "1d-3h" or "1d+3h" are nonsense; absl takes a sign only in front.
      if (days != absl::ZeroDuration() && (rest.front() == '-' || rest.front() == '+')) {
        return bad("");
      }
      d = days + part;
    }
  }
  if (d == absl::InfiniteDuration() || d == -absl::InfiniteDuration()) return bad("not finite");
  if (d <= absl::ZeroDuration()) return bad("must be positive");
  return d;
}

google::protobuf::Duration ToProtoDuration(absl::Duration d) {
  google::protobuf::Duration p;
  const int64_t secs = absl::IDivDuration(d, absl::Seconds(1), &d);
  p.set_seconds(secs);
  p.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d)));
  return p;
}

absl::Duration FromProtoDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

std::string FormatDurationShort(absl::Duration d) {
  int64_t s = absl::ToInt64Seconds(d);
  if (s <= 0) return "0s";
  const int64_t days = s / 86400, hours = (s / 3600) % 24, mins = (s / 60) % 60, secs = s % 60;
  if (days > 0) return hours ? absl::StrFormat("%dd%02dh", days, hours) : absl::StrFormat("%dd", days);
  if (hours > 0) return mins ? absl::StrFormat("%dh%02dm", hours, mins) : absl::StrFormat("%dh", hours);
  if (mins > 0) return secs ? absl::StrFormat("%dm%02ds", mins, secs) : absl::StrFormat("%dm", mins);
  return absl::StrFormat("%ds", secs);
}

}  // namespace loupe::cli
