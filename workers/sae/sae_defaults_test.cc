// sae.train's acceptance bound (mmcs > 0.8 on the synthetic ground truth
// with every parameter at its default) for the architectures that need the
// slow default run: a binary of its own so sae_test stays short.
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <string>

#include "gtest/gtest.h"
#include "loupe/v1/kinds.pb.h"
#include "workers/runtime/params.h"
#include "workers/runtime/testing/fake_job_context.h"
#include "workers/sae/sae_train_kind.h"

namespace loupe {
namespace {

// Trains `arch` with every parameter at its default (seed aside) and
// returns the results; prints them for docs/jobs/sae.train.md.
std::map<std::string, double> DefaultRun(const char* arch, const char* seed) {
  std::unique_ptr<JobKind> kind = MakeSaeTrainKind();
  v1::SaeTrainParams p;
  EXPECT_TRUE(SetParamFromText(&p, "architecture", arch).ok());
  EXPECT_TRUE(SetParamFromText(&p, "seed", seed).ok());
  EXPECT_TRUE(ApplyDefaultsAndValidate(*kind, &p).ok());
  testing::FakeJobContext ctx;
  const auto start = std::chrono::steady_clock::now();
  absl::Status s = kind->Run(p, ctx);
  EXPECT_TRUE(s.ok()) << s;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%-10s seed %s  %.1f s  mmcs %.4f  fvu %.4f  nmse %.4f  l0 %.2f  dead_fraction %.3f\n", arch, seed,
              secs, ctx.results["mmcs"], ctx.results["fvu"], ctx.results["nmse"], ctx.results["l0"],
              ctx.results["dead_fraction"]);
  return ctx.results;
}

// The acceptance bound for the two architectures whose defaults
// were once below it (batchtopk reached mmcs 0.69 and jumprelu 0.81 before
// layer_norm became the default; topk's default run is DefaultRunTest).
// Seeds 0-2 measured by hand: batchtopk and jumprelu both above 0.95.
TEST(SaeKinds, BatchTopKAndJumpReluLearnTheGroundTruthWithTheirDefaults) {
  at::set_num_threads(1);
  for (const char* arch : {"batchtopk", "jumprelu"}) {
    std::map<std::string, double> r = DefaultRun(arch, "0");
    EXPECT_GT(r["mmcs"], 0.9) << arch;
    EXPECT_LT(r["fvu"], 0.2) << arch;
  }
}

// The acceptance measurement for docs/jobs/sae.train.md: every architecture
// at its defaults on seeds 0-2. Slow (relu alone takes half a minute), so not
// part of the suite: run with
//   sae_test --gtest_also_run_disabled_tests --gtest_filter='*DefaultsPerArchitecture*'
TEST(SaeKinds, DISABLED_DefaultsPerArchitecture) {
  at::set_num_threads(1);
  for (const char* arch : {"relu", "topk", "batchtopk", "jumprelu"}) {
    for (const char* seed : {"0", "1", "2"}) EXPECT_GT(DefaultRun(arch, seed)["mmcs"], 0.8) << arch << " " << seed;
  }
}

}  // namespace
}  // namespace loupe
