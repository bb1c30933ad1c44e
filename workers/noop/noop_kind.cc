#include "workers/noop/noop_kind.h"

#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "loupe/v1/kinds.pb.h"
#include "workers/runtime/param_builders.h"

namespace loupe {
namespace {

class NoopKind : public TypedJobKind<loupe::v1::NoopParams> {
 public:
  std::string name() const override { return "noop"; }
  std::string description() const override {
    return "Does nothing: returns at once, or after `steps` steps of `sleep_ms` "
           "each. For tests and benchmarks of the platform.";
  }
  std::vector<ParamSpec> params() const override {
    return {
        NumberParam("steps", "Steps to take (each reports progress)", "0", 0, 1e6),
        NumberParam("sleep_ms", "Milliseconds to sleep per step", "0", 0, 60000),
        TextParam("fail_with", "Fail with this message instead of succeeding"),
        ReferenceParam("input",
                       "An input to resolve and report (dataset:ID, job:ID[/NAME] or a path)"),
        NumberParam("artifact_bytes",
                    "Write an artifact noop.bin of this many bytes (byte i = i mod 251)", "0", 0,
                    1 << 30),
    };
  }
  std::vector<std::string> result_fields() const override { return {"steps", "input_bytes"}; }
  std::vector<std::string> artifact_names() const override { return {"noop.bin"}; }

 protected:
  absl::Status RunJob(const loupe::v1::NoopParams& p, JobContext& ctx) const override {
    if (p.has_input()) {
      absl::StatusOr<std::string> path = ctx.ResolveInput(p.input());
      if (!path.ok()) return path.status();
      std::error_code ec;
      auto size = std::filesystem::is_regular_file(*path, ec)
                      ? std::filesystem::file_size(*path, ec)
                      : 0;
      ctx.Log(absl::StrCat("input ", p.input(), " -> ", *path, " (", size, " bytes)"));
      ctx.SetResult("input_bytes", static_cast<double>(size));
    }
    for (int64_t step = 1; step <= p.steps(); ++step) {
      if (absl::Status s = ctx.CheckContinue(); !s.ok()) return s;
      if (p.sleep_ms() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(p.sleep_ms()));
      ctx.ReportProgress(step, p.steps());
      ctx.ReportMetrics(step, {{"step", static_cast<double>(step)}});
    }
    if (p.has_fail_with()) return absl::AbortedError(p.fail_with());
    if (p.artifact_bytes() > 0) {
      std::string bytes(static_cast<size_t>(p.artifact_bytes()), '\0');
      for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i % 251);
      if (absl::Status s = ctx.WriteArtifact("noop.bin", bytes, "application/octet-stream");
          !s.ok())
        return s;
    }
    ctx.SetResult("steps", static_cast<double>(p.steps()));
    return absl::OkStatus();
  }
};

}  // namespace

std::unique_ptr<JobKind> MakeNoopKind() { return std::make_unique<NoopKind>(); }

}  // namespace loupe
