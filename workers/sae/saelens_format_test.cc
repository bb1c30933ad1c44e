#include "workers/sae/saelens_format.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "workers/common/safetensors_torch.h"
#include "workers/sae/sae_model.h"

namespace loupe::sae {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class SaeLensFormatTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() /
            ("loupe-saelens-test-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static SaeLensConfig Config() {
    SaeLensConfig cfg;
    cfg.d_in = 6;
    cfg.d_sae = 10;
    cfg.k = 3;
    cfg.metadata = {{"model_name", "synthetic"}, {"hook_name", "synthetic"}, {"context_size", 1}};
    return cfg;
  }
  static SaeLensWeights Weights() {
    torch::manual_seed(9);
    return {torch::randn({6, 10}), torch::randn({10, 6}), torch::randn({10}), torch::randn({6}), {}};
  }
  std::string Read(const char* name) {
    std::ifstream f(std::filesystem::path(dir_) / name);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }

  std::string dir_;
};

TEST_F(SaeLensFormatTest, RoundTripsWeightsAndConfig) {
  SaeLensWeights w = Weights();
  ASSERT_TRUE(WriteSaeLensDir(dir_, w, Config()).ok());
  absl::StatusOr<SaeLensSae> back = ReadSaeLensDir(dir_);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(torch::equal(back->weights.W_enc, w.W_enc));
  EXPECT_TRUE(torch::equal(back->weights.W_dec, w.W_dec));
  EXPECT_TRUE(torch::equal(back->weights.b_enc, w.b_enc));
  EXPECT_TRUE(torch::equal(back->weights.b_dec, w.b_dec));
  EXPECT_TRUE(back->weights.extra.empty());
  EXPECT_EQ(back->cfg.d_in, 6);
  EXPECT_EQ(back->cfg.d_sae, 10);
  EXPECT_EQ(back->cfg.k, 3);
  EXPECT_EQ(back->cfg.architecture, "topk");
  EXPECT_EQ(back->cfg.metadata["model_name"], "synthetic");

  // cfg.json in SAELens's layout and key order.
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(Read(kSaeConfigFile));
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  EXPECT_THAT(keys, ElementsAre("d_in", "d_sae", "dtype", "device", "apply_b_dec_to_input",
                                "normalize_activations", "reshape_activations", "metadata", "k",
                                "architecture"));
  EXPECT_EQ(j["dtype"], "float32");
  EXPECT_EQ(j["device"], "cpu");
  EXPECT_EQ(j["apply_b_dec_to_input"], true);
  EXPECT_EQ(j["normalize_activations"], "none");
  EXPECT_EQ(j["reshape_activations"], "none");

  // The weights file holds exactly SAELens's four float32 tensors.
  absl::StatusOr<std::shared_ptr<const safetensors::File>> f =
      safetensors::File::Open((std::filesystem::path(dir_) / kSaeWeightsFile).string());
  ASSERT_TRUE(f.ok());
  EXPECT_THAT((*f)->names(), ElementsAre("W_dec", "W_enc", "b_dec", "b_enc"));
  for (const auto& [name, info] : (*f)->tensors()) EXPECT_EQ(info.dtype, safetensors::DType::kF32) << name;
  EXPECT_EQ((*f)->metadata().at("format"), "pt");

  // And they load into a working SAE.
  absl::StatusOr<SaeModel> sae = LoadSae(dir_);
  ASSERT_TRUE(sae.ok()) << sae.status();
  EXPECT_EQ(sae->architecture, SaeArchitecture::kTopK);
  EXPECT_EQ((sae->Encode(torch::randn({2, 6})) != 0).sum(1).max().item<int64_t>(), 3);
}

TEST_F(SaeLensFormatTest, WriterChecksShapes) {
  SaeLensWeights w = Weights();
  w.b_enc = torch::zeros({9});
  absl::Status s = WriteSaeLensDir(dir_, w, Config());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("b_enc must be [10], got [9]"));
}

TEST_F(SaeLensFormatTest, ReaderRefusesInconsistentFiles) {
  ASSERT_TRUE(WriteSaeLensDir(dir_, Weights(), Config()).ok());
  const std::string weights = (std::filesystem::path(dir_) / kSaeWeightsFile).string();
  auto write_cfg = [&](const std::string& text) {
    std::ofstream(std::filesystem::path(dir_) / kSaeConfigFile, std::ios::trunc) << text;
  };
  nlohmann::json good = nlohmann::json::parse(Read(kSaeConfigFile));

  nlohmann::json j = good;
  j["d_sae"] = 11;
  write_cfg(j.dump());
  EXPECT_THAT(ReadSaeLensDir(dir_).status().message(), HasSubstr("W_enc is [6, 10] but cfg.json implies [6, 11]"));

  j = good;
  j.erase("k");
  write_cfg(j.dump());
  EXPECT_THAT(ReadSaeLensDir(dir_).status().message(), HasSubstr("architecture 'topk' needs 'k'"));

  j = good;
  j["k"] = 11;
  write_cfg(j.dump());
  EXPECT_THAT(ReadSaeLensDir(dir_).status().message(), HasSubstr("'k' must be an integer in [1, d_sae = 10]"));

  j = good;
  j["d_in"] = "6";
  write_cfg(j.dump());
  EXPECT_THAT(ReadSaeLensDir(dir_).status().message(), HasSubstr("'d_in' must be a positive integer"));

  j = good;
  j["dtype"] = "float16";
  write_cfg(j.dump());
  EXPECT_THAT(ReadSaeLensDir(dir_).status().message(), HasSubstr("W_enc is Float but cfg.json says float16"));

  write_cfg("{not json");
  EXPECT_THAT(ReadSaeLensDir(dir_).status().message(), HasSubstr("not valid JSON"));

  write_cfg(good.dump());
  SaeLensWeights w = Weights();
  ASSERT_TRUE(safetensors::SaveTensors(weights, {{"W_enc", w.W_enc}, {"W_dec", w.W_dec}, {"b_dec", w.b_dec}}).ok());
  EXPECT_THAT(ReadSaeLensDir(dir_).status().message(), HasSubstr("lack tensor 'b_enc'"));

  std::filesystem::remove(std::filesystem::path(dir_) / kSaeConfigFile);
  EXPECT_EQ(ReadSaeLensDir(dir_).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace loupe::sae
