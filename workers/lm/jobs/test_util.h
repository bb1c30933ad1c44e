// Shared pieces of the LM job tests: an English corpus every Debian machine
// has (base-files' /usr/share/common-licenses), parameters from text, thread
// pinning, and one small lm.train run that several tests inspect.
// Not thread-safe; gtest runs tests on one thread.
#ifndef LOUPE_WORKERS_LM_JOBS_TEST_UTIL_H_
#define LOUPE_WORKERS_LM_JOBS_TEST_UTIL_H_

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "workers/lm/jobs/corpus.h"
#include "workers/lm/jobs/lm_train_kind.h"
#include "workers/runtime/params.h"
#include "workers/runtime/testing/fake_job_context.h"

namespace loupe::lm::testing {

namespace fs = std::filesystem;

// Debian's LibTorch multiplies matrices in OpenBLAS's pthread build, whose
// pool ignores at::set_num_threads and busy-waits between calls; on a shared
// 2-core machine that alone can triple run times. Tests pin both to one thread.
inline void UseOneThread() {
  at::set_num_threads(1);
  using SetThreads = void (*)(int);
  if (auto f = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(1);
}

inline double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// A directory removed at exit.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag) {
    path_ = fs::temp_directory_path() / ("loupe-lmjobs-" + tag + "-" + std::to_string(::getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() { fs::remove_all(path_); }
  std::string File(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

inline void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}
inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The license texts base-files ships (Apache-2.0, GPL-*, MPL-*, …; ~237 KB
// of English), regular files in name order.
inline std::string LicenseCorpus() {
  const fs::path dir = "/usr/share/common-licenses";
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file() && !e.is_symlink()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::string text;
  for (const fs::path& f : files) text += ReadFile(f.string());
  return text;
}

// Kind params from key=value text, defaults applied as the server would.
template <typename Params>
absl::StatusOr<Params> MakeParams(const JobKind& kind, const std::map<std::string, std::string>& given) {
  Params p;
  for (const auto& [k, v] : given) {
    if (absl::Status s = SetParamFromText(&p, k, v); !s.ok()) return s;
  }
  if (absl::Status s = ApplyDefaultsAndValidate(kind, &p); !s.ok()) return s;
  return p;
}

// Settings small enough for a test, large enough to learn English-ish text.
inline std::map<std::string, std::string> TinyTrainParams(const std::string& corpus_ref) {
  return {{"corpus", corpus_ref}, {"vocab_size", "512"}, {"n_layers", "2"},   {"d_model", "64"},
          {"n_heads", "4"},       {"context_length", "64"}, {"batch_size", "16"}, {"steps", "250"},
          {"warmup_steps", "20"}, {"lr", "0.004"},        {"seed", "1"}};
}

// One tiny lm.train run on the license corpus, shared by the tests that
// inspect a trained model (training once keeps the suite fast).
struct TrainedModel {
  std::unique_ptr<ScratchDir> dir;  // corpus.txt, val.txt, model/ (the artifacts)
  std::string corpus;               // the whole text
  std::string val;                  // its held-out part
  loupe::testing::FakeJobContext ctx;
  absl::Status status;
  double seconds = 0;
};

inline const TrainedModel& SharedTrainedModel() {
  static std::unique_ptr<TrainedModel> m = [] {
    auto t = std::make_unique<TrainedModel>();
    UseOneThread();
    t->dir = std::make_unique<ScratchDir>("shared");
    t->corpus = LicenseCorpus();
    t->val = std::string(SplitHeldOut(t->corpus, 0.1).val);  // lm.train's default val_fraction
    WriteFile(t->dir->File("val.txt"), t->val);
    WriteFile(t->dir->File("corpus.txt"), t->corpus);
    t->ctx.inputs["dataset:licenses"] = t->dir->File("corpus.txt");
    std::unique_ptr<JobKind> kind = MakeLmTrainKind();
    absl::StatusOr<loupe::v1::LmTrainParams> p =
        MakeParams<loupe::v1::LmTrainParams>(*kind, TinyTrainParams("dataset:licenses"));
    if (!p.ok()) {
      t->status = p.status();
      return t;
    }
    const auto start = std::chrono::steady_clock::now();
    t->status = kind->Run(*p, t->ctx);
    t->seconds = Seconds(start);
    fs::create_directories(t->dir->path() / "model");
    for (const auto& [name, bytes] : t->ctx.artifacts) WriteFile(t->dir->File("model/" + name), bytes);
    return t;
  }();
  return *m;
}

}  // namespace loupe::lm::testing

#endif  // LOUPE_WORKERS_LM_JOBS_TEST_UTIL_H_
