// FakeJobContext: an in-memory JobContext for unit tests of job kinds.
// Not thread-safe; use from the thread that runs the job.
#ifndef LOUPE_WORKERS_RUNTIME_TESTING_FAKE_JOB_CONTEXT_H_
#define LOUPE_WORKERS_RUNTIME_TESTING_FAKE_JOB_CONTEXT_H_

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/strings/str_cat.h"
#include "workers/runtime/job_context.h"

namespace loupe::testing {

class FakeJobContext : public JobContext {
 public:
  FakeJobContext() {
    scratch_ = (std::filesystem::temp_directory_path() /
                ("loupe-fake-" + std::to_string(::getpid()) + "-" +
                 std::to_string(reinterpret_cast<uintptr_t>(this))))
                   .string();
    std::filesystem::create_directories(scratch_);
    state_ = scratch_ + "-state";
    std::filesystem::create_directories(state_);
  }
  ~FakeJobContext() override {
    std::filesystem::remove_all(scratch_);
    if (remove_state_dir) std::filesystem::remove_all(state_);
  }

  absl::Status CheckContinue() override {
    ++checks;
    if (cancel_after_checks >= 0 && checks > cancel_after_checks)
      return absl::CancelledError("job cancelled");
    return absl::OkStatus();
  }
  void ReportProgress(int64_t step, int64_t total) override {
    progress.emplace_back(step, total);
  }
  void ReportMetrics(int64_t step, const std::map<std::string, double>& v) override {
    metrics.emplace_back(step, v);
  }
  void Log(absl::string_view line) override { logs.emplace_back(line); }
  void SetResult(absl::string_view name, double value) override {
    results[std::string(name)] = value;
  }
  absl::Status WriteArtifact(absl::string_view name, absl::string_view bytes,
                             absl::string_view media_type) override {
    artifacts[std::string(name)] = std::string(bytes);
    media_types[std::string(name)] = std::string(media_type);
    return absl::OkStatus();
  }
  absl::Status WriteArtifactFile(absl::string_view name, const std::string& path,
                                 absl::string_view media_type) override {
    std::ifstream in(path, std::ios::binary);
    if (!in) return absl::NotFoundError(path);
    std::stringstream ss;
    ss << in.rdbuf();
    std::filesystem::remove(path);
    return WriteArtifact(name, ss.str(), media_type);
  }
  absl::StatusOr<std::string> ResolveInput(absl::string_view reference) override {
    auto it = inputs.find(std::string(reference));
    if (it == inputs.end())
      return absl::NotFoundError(absl::StrCat("no input ", reference));
    return it->second;
  }
  const std::string& scratch_dir() const override { return scratch_; }
  const std::string& state_dir() const override { return state_; }
  // Makes this context share another's state directory, as the next attempt
  // of the same job would (the directory is then kept on destruction).
  void UseStateDir(const std::string& dir) {
    std::filesystem::remove_all(state_);
    state_ = dir;
    remove_state_dir = false;
  }
  int threads() const override { return threads_; }
  int attempt() const override { return 1; }
  const std::string& job_id() const override { return job_id_; }

  // Inspectable state.
  int64_t checks = 0;
  int64_t cancel_after_checks = -1;  // >= 0: CheckContinue fails after this many
  std::vector<std::pair<int64_t, int64_t>> progress;
  std::vector<std::pair<int64_t, std::map<std::string, double>>> metrics;
  std::vector<std::string> logs;
  std::map<std::string, double> results;
  std::map<std::string, std::string> artifacts;
  std::map<std::string, std::string> media_types;
  std::map<std::string, std::string> inputs;  // reference -> path
  int threads_ = 1;
  bool remove_state_dir = true;

 private:
  std::string scratch_;
  std::string state_;
  std::string job_id_ = "test-job";
};

}  // namespace loupe::testing

#endif  // LOUPE_WORKERS_RUNTIME_TESTING_FAKE_JOB_CONTEXT_H_
