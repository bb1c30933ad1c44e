// Helpers shared by the lm_model tests (header-only; tests only).
#ifndef LOUPE_WORKERS_LM_MODEL_TEST_UTIL_H_
#define LOUPE_WORKERS_LM_MODEL_TEST_UTIL_H_

#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>

#include "workers/common/safetensors_torch.h"

namespace loupe::lm::testing {

// Fixtures written by testdata/make_reference.py.
inline std::string TestdataDir() {
  return (std::filesystem::path(__FILE__).parent_path() / "testdata").string();
}
inline std::string FixtureDir(const std::string& name) { return TestdataDir() + "/" + name; }
inline std::string ExpectedPath(const std::string& name) {
  return TestdataDir() + "/" + name + ".expected.safetensors";
}

// The metric the reference comparison uses: max|a - b| / max|b|.
inline double MaxRelErr(const torch::Tensor& a, const torch::Tensor& b) {
  torch::Tensor x = a.detach().to(torch::kCPU, torch::kDouble), y = b.detach().to(torch::kCPU, torch::kDouble);
  return ((x - y).abs().max() / y.abs().max()).item<double>();
}

// A fresh directory under the test temp dir, removed by the destructor.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TEST_TMPDIR");
    std::random_device rd;
    path_ = std::filesystem::path(base != nullptr ? base : std::filesystem::temp_directory_path().string()) /
            ("lm_model_test_" + std::to_string(::getpid()) + "_" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string path() const { return path_.string(); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace loupe::lm::testing

#endif  // LOUPE_WORKERS_LM_MODEL_TEST_UTIL_H_
