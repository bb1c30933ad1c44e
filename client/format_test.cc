// Pure formatting and parsing pieces of the CLI: exit codes, durations,
// progress bar, tables, sizes, addresses, checksums.
#include <map>
#include <set>
#include <string>

#include "absl/time/time.h"
#include "client/connection.h"
#include "client/duration.h"
#include "client/exit_codes.h"
#include "client/file_util.h"
#include "client/output.h"
#include "client/progress_bar.h"
#include "gtest/gtest.h"

namespace loupe::cli {
namespace {

using grpc::StatusCode;

TEST(ExitCodes, MapsEveryStatusCode) {
  EXPECT_EQ(ExitCodeForStatus(StatusCode::OK), 0);
  EXPECT_EQ(ExitCodeForStatus(StatusCode::UNAVAILABLE), 4);
  EXPECT_EQ(ExitCodeForStatus(StatusCode::DEADLINE_EXCEEDED), 4);
  EXPECT_EQ(ExitCodeForStatus(StatusCode::UNAUTHENTICATED), 5);
  EXPECT_EQ(ExitCodeForStatus(StatusCode::PERMISSION_DENIED), 5);
  EXPECT_EQ(ExitCodeForStatus(StatusCode::NOT_FOUND), 6);
  EXPECT_EQ(ExitCodeForStatus(StatusCode::INVALID_ARGUMENT), 7);
  EXPECT_EQ(ExitCodeForStatus(StatusCode::FAILED_PRECONDITION), 7);
  EXPECT_EQ(ExitCodeForStatus(StatusCode::OUT_OF_RANGE), 7);
  EXPECT_EQ(ExitCodeForStatus(StatusCode::ALREADY_EXISTS), 7);
  EXPECT_EQ(ExitCodeForStatus(StatusCode::INTERNAL), 8);
  EXPECT_EQ(ExitCodeForStatus(StatusCode::UNKNOWN), 8);
  EXPECT_EQ(ExitCodeForStatus(StatusCode::RESOURCE_EXHAUSTED), 8);
  EXPECT_EQ(ExitCodeForStatus(StatusCode::UNIMPLEMENTED), 8);
  EXPECT_EQ(ExitCodeForStatus(StatusCode::CANCELLED), 8);
}

TEST(ExitCodes, FinalStates) {
  EXPECT_EQ(ExitCodeForJobState(v1::SUCCEEDED), kExitOk);
  EXPECT_EQ(ExitCodeForJobState(v1::FAILED), kExitJobFailed);
  EXPECT_EQ(ExitCodeForJobState(v1::CANCELLED), kExitJobCancelled);
  EXPECT_EQ(ExitCodeForJobState(v1::RUNNING), kExitServerError);
  EXPECT_EQ(ExitCodeForJobState(v1::JOB_STATE_UNSPECIFIED), kExitServerError);
}

TEST(ExitCodes, AreDistinct) {
  std::set<int> codes = {kExitOk, kExitJobFailed, kExitUsage, kExitJobCancelled, kExitUnreachable,
                         kExitAuth, kExitNotFound, kExitInvalidArgument, kExitServerError,
                         kExitLocalIo};
  EXPECT_EQ(codes.size(), 10u);
  EXPECT_EQ(kExitLocalIo, 9);
}

TEST(Duration, AcceptedForms) {
  EXPECT_EQ(*ParseDurationFlag("90s"), absl::Seconds(90));
  EXPECT_EQ(*ParseDurationFlag("10m"), absl::Minutes(10));
  EXPECT_EQ(*ParseDurationFlag("1h30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseDurationFlag("2h"), absl::Hours(2));
  EXPECT_EQ(*ParseDurationFlag("45"), absl::Seconds(45));
  EXPECT_EQ(*ParseDurationFlag(" 45 "), absl::Seconds(45));
  EXPECT_EQ(*ParseDurationFlag("1.5"), absl::Milliseconds(1500));
  EXPECT_EQ(*ParseDurationFlag("250ms"), absl::Milliseconds(250));
  EXPECT_EQ(*ParseDurationFlag("2d"), absl::Hours(48));
  EXPECT_EQ(*ParseDurationFlag("1d12h"), absl::Hours(36));
}

TEST(Duration, RejectedFormsExplainThemselves) {
  for (const char* bad : {"", "abc", "10x", "-5", "0", "0s", "inf", "nan", "1e3", "h", "5 m",
                          "-1h", "1d-3h", "xd"}) {
    auto d = ParseDurationFlag(bad);
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_TRUE(absl::IsInvalidArgument(d.status())) << bad;
    EXPECT_NE(d.status().message().find("90s"), absl::string_view::npos) << d.status();
  }
}

TEST(Duration, ProtoRoundTrip) {
  auto p = ToProtoDuration(absl::Milliseconds(90500));
  EXPECT_EQ(p.seconds(), 90);
  EXPECT_EQ(p.nanos(), 500000000);
  EXPECT_EQ(FromProtoDuration(p), absl::Milliseconds(90500));
}

TEST(Duration, ShortText) {
  EXPECT_EQ(FormatDurationShort(absl::Seconds(12)), "12s");
  EXPECT_EQ(FormatDurationShort(absl::Seconds(185)), "3m05s");
  EXPECT_EQ(FormatDurationShort(absl::Minutes(3)), "3m");
  EXPECT_EQ(FormatDurationShort(absl::Minutes(62)), "1h02m");
  EXPECT_EQ(FormatDurationShort(absl::Hours(51)), "2d03h");
  EXPECT_EQ(FormatDurationShort(absl::Milliseconds(300)), "0s");
  EXPECT_EQ(FormatDurationShort(absl::Seconds(-5)), "0s");
}

TEST(ProgressBar, TheDocumentedLine) {
  std::map<std::string, double> m = {{"fvu", 0.0123}, {"l0", 31.8}};
  // 80 columns: a bar of 26.
  EXPECT_EQ(RenderProgressBar(1234, 3000, m, absl::Seconds(12), 80),
            "[##########----------------] 1234/3000 41% fvu=0.0123 l0=31.8 eta 12s");
}

TEST(ProgressBar, BarWidthDependsOnTheTerminalOnly) {
  std::map<std::string, double> m = {{"fvu", 0.0123}, {"l0", 31.8}};
  const std::string plain = RenderProgressBar(1234, 3000, {}, std::nullopt, 80);
  const std::string full = RenderProgressBar(1234, 3000, m, absl::Seconds(12), 80);
  EXPECT_EQ(full.substr(0, plain.size()), plain);
}

TEST(ProgressBar, WideTerminalCapsTheBarAt30) {
  std::string line = RenderProgressBar(1500, 3000, {}, std::nullopt, 200);
  EXPECT_EQ(line, "[###############---------------] 1500/3000 50%");
}

TEST(ProgressBar, FillsCompletelyAtTheEnd) {
  std::string line = RenderProgressBar(3000, 3000, {}, absl::ZeroDuration(), 40);
  EXPECT_EQ(line.find('-'), std::string::npos) << line;
  EXPECT_NE(line.find("3000/3000 100% eta 0s"), std::string::npos) << line;
  // Steps past the total do not overflow the bar.
  EXPECT_EQ(RenderProgressBar(5000, 3000, {}, std::nullopt, 40).find('-'), std::string::npos);
}

TEST(ProgressBar, NarrowTerminalDropsMetricsFromTheEnd) {
  std::map<std::string, double> m = {{"fvu", 0.0123}, {"l0", 31.8}};
  std::string line = RenderProgressBar(1234, 3000, m, absl::Seconds(12), 60);
  EXPECT_EQ(line, "[#######------------] 1234/3000 41% fvu=0.0123 eta 12s");
  line = RenderProgressBar(1234, 3000, m, absl::Seconds(12), 40);
  EXPECT_EQ(line, "[#####--------] 1234/3000 41% eta 12s");
}

TEST(ProgressBar, NeverReachesTheLastColumn) {
  std::map<std::string, double> m = {{"a_long_metric_name", 1.5}, {"another", 2}};
  for (int width = 1; width < 120; ++width) {
    std::string line = RenderProgressBar(7, 10, m, absl::Minutes(3), width);
    EXPECT_LE(static_cast<int>(line.size()), std::max(1, width - 1)) << width << ": " << line;
  }
}

TEST(ProgressBar, UnknownTotalHasNoBar) {
  EXPECT_EQ(RenderProgressBar(1234, 0, {{"loss", 0.5}}, absl::Seconds(3), 80),
            "step 1234 loss=0.5");
}

TEST(EtaEstimator, FromTheRateSinceTheFirstObservation) {
  EtaEstimator eta;
  absl::Time t0 = absl::FromUnixSeconds(1000);
  EXPECT_FALSE(eta.Eta(100).has_value());
  eta.Observe(t0, 10, 1);
  EXPECT_FALSE(eta.Eta(100).has_value());
  eta.Observe(t0 + absl::Seconds(10), 20, 1);  // 1 s per step
  ASSERT_TRUE(eta.Eta(100).has_value());
  EXPECT_EQ(*eta.Eta(100), absl::Seconds(80));
  // A new attempt starts over.
  eta.Observe(t0 + absl::Seconds(20), 0, 2);
  EXPECT_FALSE(eta.Eta(100).has_value());
  eta.Observe(t0 + absl::Seconds(22), 10, 2);  // 0.2 s per step
  EXPECT_EQ(*eta.Eta(100), absl::Seconds(18));
  eta.Observe(t0 + absl::Seconds(30), 100, 2);
  EXPECT_EQ(*eta.Eta(100), absl::ZeroDuration());
}

TEST(Table, AlignsColumnsWithoutTrailingBlanks) {
  std::string t = FormatTable({"ID", "KIND", "STATE"},
                              {{"j-1", "sae.train", "RUNNING"}, {"j-22", "noop", ""}, {"j-3"}});
  EXPECT_EQ(t,
            "ID    KIND       STATE\n"
            "j-1   sae.train  RUNNING\n"
            "j-22  noop\n"
            "j-3\n");
}

TEST(Table, HeaderOnly) { EXPECT_EQ(FormatTable({"A", "B"}, {}), "A  B\n"); }

TEST(Output, Bytes) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(5 << 20), "5.0 MiB");
  EXPECT_EQ(FormatBytes(int64_t{3} << 30), "3.0 GiB");
}

TEST(Output, ProgressCellAndStates) {
  EXPECT_EQ(FormatProgressCell(1234, 3000), "1234/3000 41%");
  EXPECT_EQ(FormatProgressCell(7, 0), "7");
  EXPECT_EQ(FormatProgressCell(0, 0), "-");
  EXPECT_EQ(StateName(v1::RUNNING), "RUNNING");
  EXPECT_EQ(StateName(v1::JOB_STATE_UNSPECIFIED), "UNKNOWN");
  EXPECT_TRUE(IsFinalState(v1::CANCELLED));
  EXPECT_FALSE(IsFinalState(v1::QUEUED));
}

TEST(Output, AgesAndTimestamps) {
  google::protobuf::Timestamp ts;
  absl::Time now = absl::FromUnixSeconds(1700000000);
  EXPECT_EQ(FormatAge(ts, now), "-");
  EXPECT_EQ(FormatTimestamp(ts), "-");
  ts.set_seconds(1700000000 - 45);
  EXPECT_EQ(FormatAge(ts, now), "45s");
  ts.set_seconds(1700000000 - 3 * 3600 - 5);
  EXPECT_EQ(FormatAge(ts, now), "3h");
  ts.set_seconds(1700000000 - 5 * 86400);
  EXPECT_EQ(FormatAge(ts, now), "5d");
  ts.set_seconds(1700000000);
  EXPECT_EQ(FormatTimestamp(ts, absl::UTCTimeZone()), "2023-11-14 22:13:20");
}

TEST(Output, MetricValues) {
  EXPECT_EQ(FormatMetricValue(0.0123), "0.0123");
  EXPECT_EQ(FormatMetricValue(31.8), "31.8");
  EXPECT_EQ(FormatMetricValue(2), "2");
  EXPECT_EQ(FormatMetricsBlock({{"l0", 31.8}, {"fvu", 0.0123}}), "  fvu  0.0123\n  l0   31.8\n");
}

TEST(Output, JsonUsesProtoNamesAndPrintsDefaults) {
  v1::Job job;
  job.set_id("j-1");
  job.set_progress_step(5);
  std::string json = ToJson(job);
  EXPECT_NE(json.find("\"id\":\"j-1\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"progress_step\":\"5\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"attempt\":0"), std::string::npos) << json;
  EXPECT_NE(json.find("\"state\":\"JOB_STATE_UNSPECIFIED\""), std::string::npos) << json;
  EXPECT_EQ(json.find('\n'), std::string::npos);
}

TEST(Connection, DefaultAddressAndPort) {
  EXPECT_EQ(DefaultServerAddress(), "127.0.0.1:7733");
  EXPECT_EQ(NormalizeServerAddress(""), "127.0.0.1:7733");
  EXPECT_EQ(NormalizeServerAddress("gpu-box"), "gpu-box:7733");
  EXPECT_EQ(NormalizeServerAddress("gpu-box:9000"), "gpu-box:9000");
  EXPECT_EQ(NormalizeServerAddress("gpu-box:"), "gpu-box:7733");
  EXPECT_EQ(NormalizeServerAddress("[::1]"), "[::1]:7733");
  EXPECT_EQ(NormalizeServerAddress("[::1]:9"), "[::1]:9");
  EXPECT_EQ(NormalizeServerAddress("::1"), "[::1]:7733");
  EXPECT_EQ(NormalizeServerAddress("unix:/run/loupe.sock"), "unix:/run/loupe.sock");
  EXPECT_EQ(NormalizeServerAddress("dns:///a:1"), "dns:///a:1");
}

TEST(Connection, FlagThenEnvironmentThenDefault) {
  std::map<std::string, std::string> env = {{"LOUPE_SERVER", "envhost:1"}, {"LOUPE_TOKEN", "envtok\n"}};
  GetEnvFn get = [&](const std::string& k) -> std::optional<std::string> {
    auto it = env.find(k);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  auto s = ResolveConnectionSettings("", "", get);
  EXPECT_EQ(s.server, "envhost:1");
  EXPECT_EQ(s.token, "envtok");
  s = ResolveConnectionSettings("flaghost", "flagtok", get);
  EXPECT_EQ(s.server, "flaghost:7733");
  EXPECT_EQ(s.token, "flagtok");
  s = ResolveConnectionSettings("", "", [](const std::string&) { return std::nullopt; });
  EXPECT_EQ(s.server, "127.0.0.1:7733");
  EXPECT_EQ(s.token, "");
}

TEST(Files, Sha256AndMediaTypes) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(GuessMediaType("data/acts.NPY"), "application/x-npy");
  EXPECT_EQ(GuessMediaType("x.jsonl"), "application/x-ndjson");
  EXPECT_EQ(GuessMediaType("x.csv"), "text/csv");
  EXPECT_EQ(GuessMediaType("README"), "application/octet-stream");
  EXPECT_EQ(GuessMediaType(".hidden"), "application/octet-stream");
  EXPECT_EQ(BaseName("a/b/c.bin"), "c.bin");
  EXPECT_EQ(BaseName("c.bin"), "c.bin");
  EXPECT_EQ(BaseName("dir/"), "dir");
}

}  // namespace
}  // namespace loupe::cli
