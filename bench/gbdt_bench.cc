// gbdt_bench: fit and influence time of every gbdt.influence method on
// breast_cancer and on a ~10,000-row table (UCI Adult; a synthetic table of
// the same shape when ../shared is absent), 100 trees of depth 5, and
// BoostIn against tree_influence's BoostIn recipe in numpy
// (gbdt_boostin_reference.py) on the same model, in the same run.
//
// Protocol (the paper's): influence of every training row on 1 test row,
// after fitting. Methods whose cost is one pass per removed training row
// (leaf_influence, leaf_refit, loo) are timed on a sample of rows and
// extrapolated where the full run would take minutes; subsample is timed on
// a few models and extrapolated to 4,000. Extrapolated figures say so.
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "workers/gbdt/ensemble.h"
#include "workers/gbdt/explain.h"
#include "workers/gbdt/table.h"
#include "workers/gbdt/xgb.h"

namespace loupe::gbdt {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

Table Synthetic(int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> z;
  Table t;
  t.rows = rows;
  t.cols = cols;
  for (int64_t c = 0; c < cols; ++c) t.feature_names.push_back("x" + std::to_string(c));
  for (int64_t i = 0; i < rows; ++i) {
    double s = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const float v = z(rng);
      t.x.push_back(v);
      s += (c % 3 == 0 ? 1.0 : -0.5) * v + (c == 1 ? v * v : 0.0);
    }
    t.y.push_back(s + z(rng) > 0 ? 1 : 0);
  }
  return t;
}

void WriteCsv(const Table& t, const std::string& path) {
  std::ofstream out(path);
  for (const auto& n : t.feature_names) out << n << ",";
  out << "label\n";
  for (int64_t i = 0; i < t.rows; ++i) {
    for (int64_t c = 0; c < t.cols; ++c) {
      if (!std::isnan(t.row(i)[c])) out << absl::StrFormat("%.9g", t.row(i)[c]);
      out << ",";
    }
    out << t.y[i] << "\n";
  }
}

struct Timing {
  std::string method;
  double seconds;
  bool extrapolated;
  std::string note;
};

void RunDataset(const std::string& name, const Table& all, int threads, const std::string& reference_script,
                int64_t subsample_models, int64_t sample_rows) {
  auto [train_idx, test_idx] = SplitRows(all.rows, 0.2, 1);
  const Table train = all.Select(train_idx), test_all = all.Select(test_idx);
  const Table test1 = test_all.Select({0});
  TrainOptions o;
  o.n_estimators = 100;
  o.max_depth = 5;
  o.threads = threads;
  std::printf("\n## %s: %lld train rows, %lld features, 100 trees depth 5, %d thread(s)\n", name.c_str(),
              static_cast<long long>(train.rows), static_cast<long long>(train.cols), threads);
  // Fit: median of 3.
  std::vector<double> fits;
  std::unique_ptr<Booster> booster;
  for (int r = 0; r < 3; ++r) {
    const double t0 = Now();
    booster = std::move(*Booster::Train(train, o));
    fits.push_back(Now() - t0);
  }
  std::sort(fits.begin(), fits.end());
  const std::string json = *booster->SaveJson();
  const double p0 = Now();
  Ensemble model = *ParseXgboostJson(json, "model");
  const double parse = Now() - p0;
  std::printf("fit (XGBoost, median of 3): %.3f s; parse JSON: %.4f s\n", fits[1], parse);

  ExplainInput in;
  in.model = &model;
  in.train = &train;
  in.test = &test1;
  in.hyper = {o.learning_rate, o.reg_lambda, o.min_child_weight};
  in.retrain = o;
  in.retrain.threads = 1;
  in.threads = threads;
  std::vector<Timing> rows;
  const int64_t n = train.rows;
  for (const std::string& method : MethodNames()) {
    ExplainInput run = in;
    bool extrapolate = false;
    double scale = 1;
    std::string note;
    const bool per_row = method == "leaf_influence" || method == "leaf_refit" || method == "loo";
    if (per_row && sample_rows > 0 && sample_rows < n) {
      run.max_removed_rows = sample_rows;
      extrapolate = true;
      scale = static_cast<double>(n) / static_cast<double>(sample_rows);
      note = absl::StrFormat("%lld of %lld rows timed", static_cast<long long>(sample_rows), static_cast<long long>(n));
    }
    if (method == "subsample") {
      run.subsample_models = subsample_models;
      extrapolate = subsample_models < 4000;
      scale = 4000.0 / static_cast<double>(subsample_models);
      note = absl::StrFormat("%lld of 4000 models timed", static_cast<long long>(subsample_models));
    }
    const double t0 = Now();
    auto m = ComputeInfluence(method, run);
    const double dt = Now() - t0;
    if (!m.ok()) {
      std::printf("%s failed: %s\n", method.c_str(), std::string(m.status().message()).c_str());
      continue;
    }
    rows.push_back({method, dt * scale, extrapolate, note});
  }
  double boostin = 0, leafinf = 0;
  for (const auto& r : rows) {
    if (r.method == "boostin") boostin = r.seconds;
    if (r.method == "leaf_influence") leafinf = r.seconds;
  }
  std::printf("\n| method | influence time, 1 test row | fit + influence | vs BoostIn | note |\n|---|---|---|---|---|\n");
  for (const auto& r : rows) {
    std::printf("| %s | %s%.4g s | %.4g s | %.3gx | %s |\n", r.method.c_str(), r.extrapolated ? "~" : "", r.seconds,
                r.seconds + fits[1], r.seconds / boostin, r.note.c_str());
  }
  std::printf("\nLeafInfluence / BoostIn time ratio: %.3g (the paper: ~10^4)\n", leafinf / boostin);

  // BoostIn against the numpy recipe of tree_influence, same model, same rows.
  const std::string dir = (std::filesystem::temp_directory_path() / ("loupe-gbdt-bench-" + name)).string();
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/model.json") << json;
  WriteCsv(train, dir + "/train.csv");
  for (int64_t points : {int64_t{1}, std::min<int64_t>(100, test_all.rows)}) {
    std::vector<int64_t> pick(static_cast<size_t>(points));
    std::iota(pick.begin(), pick.end(), 0);
    const Table test = test_all.Select(pick);
    WriteCsv(test, dir + "/test.csv");
    ExplainInput b = in;
    b.test = &test;
    std::vector<double> ours;
    InfluenceMatrix mine;
    for (int r = 0; r < 3; ++r) {
      const double t0 = Now();
      mine = BoostIn(b);
      ours.push_back(Now() - t0);
    }
    std::sort(ours.begin(), ours.end());
    const std::string cmd = absl::StrFormat("/usr/bin/python3 %s %s/model.json %s/train.csv %s/test.csv %.17g %.17g %s/ref.bin --exact",
                                            reference_script, dir, dir, dir, o.learning_rate, o.reg_lambda, dir);
    FILE* pipe = popen(cmd.c_str(), "r");
    char line[512] = {0};
    double ref_fit = NAN, ref_inf = NAN;
    if (pipe != nullptr && std::fgets(line, sizeof line, pipe) != nullptr) std::sscanf(line, "fit_seconds=%lf influence_seconds=%lf", &ref_fit, &ref_inf);
    if (pipe != nullptr) pclose(pipe);
    std::vector<double> ref(static_cast<size_t>(mine.n_train * mine.n_test));
    std::ifstream(dir + "/ref.bin", std::ios::binary).read(reinterpret_cast<char*>(ref.data()), static_cast<std::streamsize>(ref.size() * 8));
    double max_diff = 0, max_abs = 0;
    for (size_t k = 0; k < ref.size(); ++k) {
      max_diff = std::max(max_diff, std::abs(ref[k] - mine.values[k]));
      max_abs = std::max(max_abs, std::abs(mine.values[k]));
    }
    std::printf("BoostIn, %lld test row(s): Loupe %.4f s (median of 3, %d thread(s)); numpy recipe of tree_influence "
                "%.4f s (fit %.4f + influence %.4f); speed-up %.1fx; max |difference| %.2g (max |value| %.2g)\n",
                static_cast<long long>(points), ours[1], threads, ref_fit + ref_inf, ref_fit, ref_inf,
                (ref_fit + ref_inf) / ours[1], max_diff, max_abs);
  }
}

}  // namespace
}  // namespace loupe::gbdt

int main(int argc, char** argv) {
  CLI::App app("gbdt.influence benchmark");
  int threads = 1;
  std::string tables = (std::filesystem::temp_directory_path() / "loupe-gbdt-tables").string();
  std::string adult = std::string(LOUPE_SOURCE_DIR) + "/../shared/data/uci-adult/adult.test";
  int64_t subsample_models = 40, sample_rows = 200;
  app.add_option("--threads", threads, "threads per method");
  app.add_option("--tables", tables, "where make_tables.py writes its CSVs");
  app.add_option("--subsample-models", subsample_models, "subsample: models timed (extrapolated to 4000)");
  app.add_option("--sample-rows", sample_rows, "10k table: removed rows timed for leaf_influence/leaf_refit/loo");
  CLI11_PARSE(app, argc, argv);
  // As loupe-server does at start (server/process_tuning.cc): keep freed buffers
  // mapped, so each method is not dominated by page faults of fresh
  // allocations on this VM.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  const std::string script = std::string(LOUPE_SOURCE_DIR) + "/workers/gbdt/scripts/make_tables.py";
  if (std::system(("/usr/bin/python3 " + script + " " + tables + " " + adult + " 2>/dev/null").c_str()) != 0) {
    std::fprintf(stderr, "scikit-learn is unavailable; cannot write breast_cancer.csv\n");
    return 1;
  }
  const std::string reference = std::string(LOUPE_SOURCE_DIR) + "/bench/gbdt_boostin_reference.py";
  auto bc = loupe::gbdt::LoadTable(tables + "/breast_cancer.csv", "label", "data");
  if (!bc.ok()) return 1;
  loupe::gbdt::RunDataset("breast_cancer", *bc, threads, reference, subsample_models, -1);
  loupe::gbdt::Table big;
  std::string big_name = "adult";
  if (auto a = loupe::gbdt::LoadTable(tables + "/adult.csv", "label", "data"); a.ok()) {
    std::vector<int64_t> first(12500);
    std::iota(first.begin(), first.end(), 0);
    big = a->Select(first);
  } else {
    big = loupe::gbdt::Synthetic(12500, 14, 7);
    big_name = "synthetic";
  }
  loupe::gbdt::RunDataset(big_name + "_12500", big, threads, reference, subsample_models / 4, sample_rows);
  return 0;
}
