#include "workers/sae/sae_model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "nlohmann/json.hpp"
#include "workers/sae/npy_format.h"
#include "workers/sae/saelens_format.h"

namespace loupe::sae {
namespace {

namespace fs = std::filesystem;

fs::path TestData(const char* name) { return fs::path(__FILE__).parent_path() / "testdata" / name; }

fs::path TempDir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("sae_model_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

SaeModel RandomModel(SaeArchitecture arch, int64_t d_in = 6, int64_t d_sae = 10) {
  torch::manual_seed(3);
  SaeModel m;
  m.architecture = arch;
  m.W_enc = torch::randn({d_in, d_sae});
  m.W_dec = torch::randn({d_sae, d_in});
  m.b_enc = 0.1 * torch::randn({d_sae});
  m.b_dec = 0.1 * torch::randn({d_in});
  if (arch == SaeArchitecture::kTopK || arch == SaeArchitecture::kBatchTopK) m.k = 3;
  if (arch == SaeArchitecture::kJumpRelu) m.threshold = torch::rand({d_sae}) * 0.5 + 0.1;
  if (arch == SaeArchitecture::kBatchTopK) m.threshold = torch::full({d_sae}, 0.4);
  m.metadata = {{"hook_name", "blocks.1.hook_resid_post"}};
  return m;
}

nlohmann::json ReadJson(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return nlohmann::json::parse(s.str());
}

TEST(SaeModelTest, EncodeFollowsEachArchitecture) {
  SaeModel m = RandomModel(SaeArchitecture::kRelu);
  torch::Tensor x = torch::randn({7, 6});
  torch::Tensor pre = torch::matmul(x - m.b_dec, m.W_enc) + m.b_enc;
  EXPECT_TRUE(torch::allclose(m.Encode(x), torch::relu(pre), 1e-5, 1e-6));
  m.architecture = SaeArchitecture::kTopK;
  m.k = 3;
  torch::Tensor z = m.Encode(x);
  EXPECT_TRUE(((z > 0).sum(1) <= 3).all().item<bool>());
  // The kept values are the row's 3 largest ReLU'd pre-activations.
  EXPECT_TRUE(torch::allclose(std::get<0>(z.sort(1, true)).slice(1, 0, 3),
                              std::get<0>(torch::relu(pre).sort(1, true)).slice(1, 0, 3)));
  m.architecture = SaeArchitecture::kJumpRelu;
  m.threshold = torch::full({10}, 0.3);
  EXPECT_TRUE(torch::allclose(m.Encode(x), pre * (pre > 0.3), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(m.Decode(z), torch::matmul(z, m.W_dec) + m.b_dec, 1e-5, 1e-6));
}

TEST(SaeModelTest, LayerNormInputIsStandardisedAndMappedBackLikeSaeLens) {
  SaeModel m = RandomModel(SaeArchitecture::kRelu);
  m.input_norm = InputNorm::kLayerNorm;
  torch::Tensor x = torch::randn({7, 6}) * 3 + 1;
  x[2].zero_();  // an all-zero row stays finite
  // SAELens's run_time_activation_ln_in / _out, written out.
  torch::Tensor mu = x.mean(1, true);
  torch::Tensor std = (x - mu).std(1, true, true);
  torch::Tensor n = (x - mu) / (std + 1e-5);
  torch::Tensor z = torch::relu(torch::matmul(n - m.b_dec, m.W_enc) + m.b_enc);
  torch::Tensor want = (torch::matmul(z, m.W_dec) + m.b_dec) * std + mu;
  EXPECT_TRUE(torch::allclose(m.Encode(x), z, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(m.Reconstruct(x), want, 1e-5, 1e-5));
  EXPECT_TRUE(torch::isfinite(m.Reconstruct(x)).all().item<bool>());
  // Scale- and shift-invariant codes.
  EXPECT_TRUE(torch::allclose(m.Encode(x * 5 - 2), z, 1e-4, 1e-5));

  const fs::path dir = TempDir("layer_norm");
  ASSERT_TRUE(SaveSaeLensDir(dir.string(), m).ok());
  EXPECT_EQ(ReadJson(dir / kSaeConfigFile)["normalize_activations"], "layer_norm");
  absl::StatusOr<SaeModel> back = LoadSae(dir.string());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->input_norm, InputNorm::kLayerNorm);
  EXPECT_TRUE(torch::allclose(back->Reconstruct(x), want, 1e-5, 1e-5));
  fs::remove_all(dir);
}

TEST(SaeModelTest, SaeLensRoundTripForEveryArchitecture) {
  const std::pair<SaeArchitecture, const char*> cases[] = {{SaeArchitecture::kRelu, "standard"},
                                                           {SaeArchitecture::kTopK, "topk"},
                                                           {SaeArchitecture::kBatchTopK, "jumprelu"},
                                                           {SaeArchitecture::kJumpRelu, "jumprelu"}};
  torch::Tensor x = torch::randn({9, 6});
  for (const auto& [arch, saelens_name] : cases) {
    SCOPED_TRACE(ArchitectureName(arch));
    SaeModel m = RandomModel(arch);
    fs::path dir = TempDir(ArchitectureName(arch));
    ASSERT_TRUE(SaveSaeLensDir(dir.string(), m).ok());
    nlohmann::json cfg = ReadJson(dir / "cfg.json");
    EXPECT_EQ(cfg["architecture"], saelens_name);
    EXPECT_EQ(cfg["d_in"], 6);
    EXPECT_EQ(cfg["d_sae"], 10);
    EXPECT_EQ(cfg["metadata"]["hook_name"], "blocks.1.hook_resid_post");
    EXPECT_EQ(cfg.contains("k"), arch == SaeArchitecture::kTopK);
    absl::StatusOr<SaeModel> back = LoadSae(dir.string());
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_TRUE(torch::equal(back->W_enc, m.W_enc));
    EXPECT_TRUE(torch::equal(back->W_dec, m.W_dec));
    EXPECT_TRUE(torch::equal(back->b_enc, m.b_enc));
    EXPECT_TRUE(torch::equal(back->b_dec, m.b_dec));
    // Same function (batchtopk comes back as the equivalent jumprelu).
    EXPECT_TRUE(torch::allclose(back->Encode(x), m.Encode(x), 1e-6, 1e-6));
    EXPECT_TRUE(torch::allclose(back->Reconstruct(x), m.Reconstruct(x), 1e-5, 1e-5));
    // A lone weights file with its cfg.json given elsewhere loads the same.
    fs::path elsewhere = TempDir(ArchitectureName(arch) + "_lone");
    fs::copy_file(dir / "sae_weights.safetensors", elsewhere / "w.safetensors");
    absl::StatusOr<SaeModel> lone =
        LoadSae((elsewhere / "w.safetensors").string(), (dir / "cfg.json").string());
    ASSERT_TRUE(lone.ok()) << lone.status();
    EXPECT_TRUE(torch::allclose(lone->Encode(x), m.Encode(x), 1e-6, 1e-6));
    fs::remove_all(dir);
    fs::remove_all(elsewhere);
  }
}

TEST(SaeModelTest, ReadsSaeLensStandardConfigWrittenBySaeLens) {
  // cfg.json as SAELens v6 writes a standard SAE (field names and order).
  fs::path dir = TempDir("saelens_standard");
  SaeModel m = RandomModel(SaeArchitecture::kRelu);
  ASSERT_TRUE(SaveSaeLensDir(dir.string(), m).ok());
  nlohmann::json cfg = {{"d_in", 6}, {"d_sae", 10}, {"dtype", "float32"}, {"device", "cpu"},
                        {"apply_b_dec_to_input", false}, {"normalize_activations", "none"},
                        {"reshape_activations", "none"}, {"metadata", {{"model_name", "gpt2"}}},
                        {"architecture", "standard"}};
  std::ofstream(dir / "cfg.json") << cfg.dump();
  absl::StatusOr<SaeModel> back = LoadSae(dir.string());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->architecture, SaeArchitecture::kRelu);
  EXPECT_FALSE(back->apply_b_dec_to_input);
  fs::remove_all(dir);
}

TEST(SaeModelTest, ReadsGemmaScopeNpzLikeGemmaScope) {
  absl::StatusOr<std::map<std::string, torch::Tensor>> ref = ReadNpz(TestData("gemma_scope_reference.npz").string());
  ASSERT_TRUE(ref.ok()) << ref.status();
  for (const char* file : {"gemma_scope_params.npz", "gemma_scope_params_stored.npz"}) {
    SCOPED_TRACE(file);
    absl::StatusOr<SaeModel> m = LoadSae(TestData(file).string());
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->architecture, SaeArchitecture::kJumpRelu);
    EXPECT_EQ(m->d_in(), 5);
    EXPECT_EQ(m->d_sae(), 8);
    const torch::Tensor x = ref->at("x");
    EXPECT_TRUE(torch::allclose(m->Encode(x), ref->at("acts"), 1e-5, 1e-5));
    EXPECT_TRUE(torch::allclose(m->Reconstruct(x), ref->at("recon"), 1e-4, 1e-5));
    // And it saves as a SAELens jumprelu SAE that computes the same.
    fs::path dir = TempDir("gemma");
    ASSERT_TRUE(SaveSaeLensDir(dir.string(), *m).ok());
    absl::StatusOr<SaeModel> back = LoadSae(dir.string());
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_TRUE(torch::allclose(back->Reconstruct(x), ref->at("recon"), 1e-4, 1e-5));
    fs::remove_all(dir);
  }
}

TEST(SaeModelTest, NpyRoundTripAndHeader) {
  torch::Tensor t = torch::randn({3, 4});
  std::string bytes = NpyBytes(t);
  absl::StatusOr<NpyHeader> h = ParseNpyHeader(bytes, "t.npy");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(h->dtype, torch::kFloat);
  EXPECT_EQ(h->data_offset % 64, 0u);
  EXPECT_EQ(std::memcmp(bytes.data() + h->data_offset, t.data_ptr(), 48), 0);
  EXPECT_FALSE(ParseNpyHeader("not numpy", "x.npy").ok());
}

TEST(SaeModelTest, ErrorsNameTheProblem) {
  EXPECT_EQ(LoadSae("/nonexistent/sae").status().code(), absl::StatusCode::kNotFound);
  SaeModel m = RandomModel(SaeArchitecture::kJumpRelu);
  m.threshold = torch::Tensor();
  absl::Status s = m.Validate();
  EXPECT_NE(std::string(s.message()).find("threshold"), std::string::npos) << s;
  m = RandomModel(SaeArchitecture::kTopK);
  m.k = 0;
  EXPECT_NE(std::string(m.Validate().message()).find("k in"), std::string::npos);
  EXPECT_FALSE(ParseArchitecture("gated").ok());
  // A jumprelu cfg.json whose weights lack the threshold is refused by name.
  fs::path dir = TempDir("nothreshold");
  ASSERT_TRUE(SaveSaeLensDir(dir.string(), RandomModel(SaeArchitecture::kRelu)).ok());
  nlohmann::json cfg = ReadJson(dir / "cfg.json");
  cfg["architecture"] = "jumprelu";
  std::ofstream(dir / "cfg.json") << cfg.dump();
  absl::StatusOr<SaeModel> bad = LoadSae(dir.string());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("threshold"), std::string::npos) << bad.status();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace loupe::sae
