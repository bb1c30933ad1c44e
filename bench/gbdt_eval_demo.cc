// gbdt_eval_demo: runs gbdt.influence's retraining evaluations (remove,
// relabel, poison, test_set, noise) for several methods on one table and
// prints one line per method and evaluation: the figures in
// docs/jobs/gbdt.influence.md. Not a speed benchmark.
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "CLI/CLI.hpp"
#include "absl/strings/str_split.h"
#include "loupe/v1/kinds.pb.h"
#include "workers/gbdt/gbdt_influence_kind.h"
#include "workers/runtime/params.h"
#include "workers/runtime/testing/fake_job_context.h"

int main(int argc, char** argv) {
  CLI::App app("gbdt.influence evaluations");
  std::string table = "breast_cancer", methods = "boostin,leaf_influence,leaf_refit,trex,loo,leaf_sim,input_sim,target,random";
  std::string evaluations = "remove,relabel,poison,test_set,noise";
  int threads = 2;
  int64_t points = 30, trees = 100, depth = 5, subsample_models = 500;
  app.add_option("--table", table, "breast_cancer, wine, diabetes or adult (from make_tables.py)");
  app.add_option("--methods", methods);
  app.add_option("--evaluations", evaluations);
  app.add_option("--threads", threads);
  app.add_option("--points", points, "eval_test_points");
  app.add_option("--trees", trees);
  app.add_option("--depth", depth);
  app.add_option("--subsample-models", subsample_models);
  CLI11_PARSE(app, argc, argv);
  const std::string dir = (std::filesystem::temp_directory_path() / "loupe-gbdt-tables").string();
  const std::string script = std::string(LOUPE_SOURCE_DIR) + "/workers/gbdt/scripts/make_tables.py";
  const std::string adult = std::string(LOUPE_SOURCE_DIR) + "/../shared/data/uci-adult/adult.test";
  if (std::system(("/usr/bin/python3 " + script + " " + dir + " " + adult + " 2>/dev/null").c_str()) != 0) return 1;
  auto kind = loupe::MakeGbdtInfluenceKind();
  for (const std::string& method : std::vector<std::string>(absl::StrSplit(methods, ','))) {
    loupe::testing::FakeJobContext ctx;
    ctx.threads_ = threads;
    ctx.inputs["dataset:t"] = dir + "/" + table + ".csv";
    loupe::v1::GbdtInfluenceParams p;
    p.set_data("dataset:t");
    p.set_method(method);
    p.set_n_estimators(trees);
    p.set_max_depth(depth);
    p.set_evaluation(evaluations);
    p.set_eval_test_points(points);
    p.set_subsample_models(subsample_models);
    if (absl::Status s = loupe::ApplyDefaultsAndValidate(*kind, &p); !s.ok()) return 1;
    if (absl::Status s = kind->Run(p, ctx); !s.ok()) {
      std::printf("%s: %s\n", method.c_str(), std::string(s.message()).c_str());
      continue;
    }
    std::printf("### %s (influence %.2f s)\n", method.c_str(), ctx.results["influence_seconds"]);
    for (const auto& [name, bytes] : ctx.artifacts) {
      if (name.size() > 4 && name.substr(name.size() - 4) == ".csv" && name.rfind("eval_", 0) == 0) {
        std::printf("%s\n%s\n", name.c_str(), bytes.c_str());
      }
    }
    std::fflush(stdout);
  }
  return 0;
}
