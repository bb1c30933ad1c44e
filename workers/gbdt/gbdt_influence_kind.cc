#include "workers/gbdt/gbdt_influence_kind.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <numeric>
#include <random>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "loupe/v1/kinds.pb.h"
#include "workers/common/safetensors.h"
#include "workers/gbdt/ensemble.h"
#include "workers/gbdt/evaluation.h"
#include "workers/gbdt/explain.h"
#include "workers/gbdt/replay.h"
#include "workers/gbdt/table.h"
#include "workers/gbdt/xgb.h"
#include "workers/runtime/param_builders.h"
#include "workers/runtime/params.h"

namespace loupe {
namespace {

using loupe::v1::GbdtInfluenceParams;
using namespace gbdt;  // NOLINT: this file is the kind's glue

constexpr char kName[] = "gbdt.influence";
constexpr char kInfluenceFile[] = "influence.safetensors";
constexpr char kTopRowsFile[] = "top_rows.csv";
constexpr char kModelFile[] = "model.json";
// Dense n_train × n_test doubles in memory: refuse what cannot fit.
constexpr double kMaxMatrixEntries = 2.5e8;

absl::Status ParamError(absl::string_view param, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(kName, " parameter '", param, "': ", what));
}

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    out.emplace_back(absl::StripAsciiWhitespace(part));
  }
  return out;
}

absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view field) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(kName, " parameter '", field, "': cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The objective from the labels when objective=auto: {0,1} → binary,
// small non-negative integers → multiclass, anything else → regression.
std::string DetectObjective(const std::vector<double>& y) {
  std::set<double> values(y.begin(), y.end());
  const bool integral = std::all_of(values.begin(), values.end(), [](double v) { return v >= 0 && v == std::floor(v) && v < 256; });
  if (integral && values.size() <= 2 && *values.rbegin() <= 1) return "binary:logistic";
  if (integral && values.size() <= 32) return "multi:softprob";
  return "reg:squarederror";
}

absl::Status CheckLabels(const std::string& objective, int num_class, const Table& t, absl::string_view field) {
  for (int64_t i = 0; i < t.rows; ++i) {
    const double y = t.y[static_cast<size_t>(i)];
    if (objective == "binary:logistic" && y != 0 && y != 1) {
      return ParamError(field, absl::StrCat("row ", i, " has label ", y, "; binary:logistic needs labels 0 or 1"));
    }
    if (absl::StartsWith(objective, "multi:") && (y < 0 || y != std::floor(y) || y >= num_class)) {
      return ParamError(field, absl::StrCat("row ", i, " has label ", y, "; multiclass needs integer labels 0..",
                                            num_class - 1));
    }
  }
  return absl::OkStatus();
}

std::string Csv(double v) { return std::isfinite(v) ? absl::StrFormat("%.6g", v) : ""; }

class GbdtInfluenceKind : public TypedJobKind<GbdtInfluenceParams> {
 public:
  std::string name() const override { return kName; }
  std::string description() const override {
    return "Training-data influence for gradient-boosted trees (Brophy, Hammoudeh & Lowd, JMLR 2023): trains an "
           "XGBoost model (or loads one), checks that Loupe's parse reproduces its margins, and estimates how much "
           "each training row helps (+) or hurts (−) each test row's loss with BoostIn, TREX, LeafInfluence, "
           "LeafRefit, LOO, SubSample (Data Shapley) or a baseline; optional retraining evaluations.";
  }
  std::vector<ParamSpec> params() const override {
    return {
        ReferenceParam("data", "Training table (required): CSV with a header, or LibSVM; dataset:ID or a server path"),
        TextParam("label", "CSV column holding the target", "label"),
        ReferenceParam("test_data", "Test table in the same format; if absent, a test_fraction split of data"),
        NumberParam("test_fraction", "Share of data held out for testing when test_data is absent", "0.2", 0.0, 0.9),
        ChoiceParam("objective", "XGBoost objective; auto: binary for 0/1 labels, multiclass for small integer labels, "
               "else squared error", "auto",
               {"auto", "reg:squarederror", "binary:logistic", "multi:softprob", "multi:softmax"}),
        NumberParam("n_estimators", "Boosting rounds", "100", 1, 10000),
        NumberParam("max_depth", "Maximum tree depth", "5", 1, 20),
        NumberParam("learning_rate", "XGBoost eta (also needed to explain a given model)", "0.3", 1e-6, 1),
        NumberParam("reg_lambda", "L2 regularisation of leaf values (also needed for a given model)", "1", 0, 1e6),
        NumberParam("min_child_weight", "Minimum Hessian sum in a child (also needed for a given model)", "1", 0, 1e6),
        ChoiceParam("tree_method", "XGBoost tree_method (the paper uses hist)", "hist", {"hist", "exact", "approx"}),
        ReferenceParam("model", "An XGBoost JSON model trained on data (optional; then the model is not retrained)"),
        ChoiceParam("method", "Influence estimator", "boostin", MethodNames()),
        TextParam("evaluation", "Comma-separated: none, remove, relabel, poison, test_set, noise, agreement", "none"),
        NumberParam("seed", "Seed of the split, XGBoost, subsampling, evaluations and random baselines", "1", 0,
               9007199254740991.0),
        NumberParam("top_k", "Helpful and harmful training rows listed per test row in top_rows.csv", "10", 1, 100000),
        NumberParam("update_set", "leaf_influence: -1 all rows, 0 only the removed row, k the rows of the k leaves "
               "moving most", "-1", -1, 1e6),
        NumberParam("max_test_rows", "Explain at most this many test rows, drawn at random (0: all)", "0", 0, 1e9),
        NumberParam("subsample_models", "subsample: models trained (the paper: 4000)", "4000", 2, 1e7),
        NumberParam("subsample_fraction", "subsample: share of training rows per model", "0.7", 0.01, 0.99),
        NumberParam("trex_lambda", "trex: L2 strength of the kernel surrogate", "0.003", 1e-9, 1e6),
        NumberParam("eval_test_points", "remove/relabel/poison: test rows evaluated (the paper: 100)", "100", 1, 1e6),
        NumberParam("noise_fraction", "noise: share of training labels corrupted (the paper: 0.4)", "0.4", 0.01, 0.9),
        TextParam("compare_methods", "agreement: methods compared with `method`",
             "boostin,trex,leaf_influence_sp,leaf_sim,input_sim,target,random"),
    };
  }
  std::vector<std::string> result_fields() const override {
    return {"n_train", "n_test", "fit_seconds", "influence_seconds", "test_loss", "test_accuracy",
            "margin_max_abs_error", "leaf_value_max_abs_error"};
  }
  std::vector<std::string> artifact_names() const override {
    std::vector<std::string> names = {kInfluenceFile, kTopRowsFile, kModelFile};
    for (const std::string& e : EvaluationNames()) {
      names.push_back(absl::StrCat("eval_", e, ".csv"));
      names.push_back(absl::StrCat("eval_", e, ".json"));
    }
    return names;
  }

 protected:
  absl::Status ValidateParams(const GbdtInfluenceParams& p) const override {
    if (p.data().empty()) return ParamError("data", "is required (a CSV or LibSVM training table)");
    if (p.label().empty()) return ParamError("label", "must name the target column");
    for (const std::string& e : SplitList(p.evaluation())) {
      const auto& names = EvaluationNames();
      if (e != "none" && std::find(names.begin(), names.end(), e) == names.end()) {
        return ParamError("evaluation", absl::StrCat("unknown evaluation '", e, "'; use none or a comma-separated list of ",
                                                     absl::StrJoin(names, ", ")));
      }
    }
    for (const std::string& m : SplitList(p.compare_methods())) {
      const auto& names = MethodNames();
      if (std::find(names.begin(), names.end(), m) == names.end()) {
        return ParamError("compare_methods", absl::StrCat("unknown method '", m, "'; one of ", absl::StrJoin(names, ", ")));
      }
    }
    return absl::OkStatus();
  }

  absl::Status RunJob(const GbdtInfluenceParams& given, JobContext& ctx) const override {
    GbdtInfluenceParams p = given;
    if (absl::Status s = ApplyDefaultsAndValidate(*this, &p); !s.ok()) return s;
    const auto started = std::chrono::steady_clock::now();
    auto seconds_since = [](std::chrono::steady_clock::time_point t) {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    };
    const uint64_t seed = static_cast<uint64_t>(p.seed());
    const int threads = std::max(1, ctx.threads());

    // Data.
    absl::StatusOr<std::string> data_path = ctx.ResolveInput(p.data());
    if (!data_path.ok()) return data_path.status();
    absl::StatusOr<Table> data = LoadTable(*data_path, p.label(), "data");
    if (!data.ok()) return data.status();
    Table train, test;
    std::vector<int64_t> train_rows, test_rows;
    if (p.has_test_data() && !p.test_data().empty()) {
      absl::StatusOr<std::string> test_path = ctx.ResolveInput(p.test_data());
      if (!test_path.ok()) return test_path.status();
      absl::StatusOr<Table> t = LoadTable(*test_path, p.label(), "test_data");
      if (!t.ok()) return t.status();
      if (absl::Status s = AlignColumns(*t, data->cols, "test_data"); !s.ok()) return s;
      train = std::move(*data);
      train_rows.resize(static_cast<size_t>(train.rows));
      std::iota(train_rows.begin(), train_rows.end(), 0);
      test_rows.resize(static_cast<size_t>(t->rows));
      std::iota(test_rows.begin(), test_rows.end(), 0);
      test = std::move(*t);
    } else {
      if (data->rows < 4) return ParamError("data", absl::StrCat("has ", data->rows, " rows; need at least 4 to split"));
      std::tie(train_rows, test_rows) = SplitRows(data->rows, p.test_fraction(), seed);
      train = data->Select(train_rows);
      test = data->Select(test_rows);
    }
    if (p.max_test_rows() > 0 && test.rows > p.max_test_rows()) {
      std::vector<int64_t> pick(static_cast<size_t>(test.rows));
      std::iota(pick.begin(), pick.end(), 0);
      std::mt19937_64 rng(seed + 5);
      std::shuffle(pick.begin(), pick.end(), rng);
      pick.resize(static_cast<size_t>(p.max_test_rows()));
      std::sort(pick.begin(), pick.end());
      std::vector<int64_t> kept;
      for (int64_t k : pick) kept.push_back(test_rows[static_cast<size_t>(k)]);
      test = test.Select(pick);
      test_rows = std::move(kept);
    }
    if (train.rows < 2) return ParamError("data", "needs at least 2 training rows");
    if (static_cast<double>(train.rows) * static_cast<double>(test.rows) > kMaxMatrixEntries) {
      return ParamError("max_test_rows", absl::StrCat("the influence matrix would have ", train.rows, " × ", test.rows,
                                                      " entries; explain fewer test rows"));
    }

    // Model: train with XGBoost or load the user's.
    TrainOptions opts;
    opts.n_estimators = p.n_estimators();
    opts.max_depth = p.max_depth();
    opts.learning_rate = p.learning_rate();
    opts.reg_lambda = p.reg_lambda();
    opts.min_child_weight = p.min_child_weight();
    opts.tree_method = p.tree_method();
    opts.seed = seed;
    opts.threads = threads;
    std::string model_json;
    std::unique_ptr<Booster> booster;
    double fit_seconds = 0;
    if (p.has_model() && !p.model().empty()) {
      absl::StatusOr<std::string> path = ctx.ResolveInput(p.model());
      if (!path.ok()) return path.status();
      absl::StatusOr<std::string> text = ReadFile(*path, "model");
      if (!text.ok()) return text.status();
      model_json = std::move(*text);
      absl::StatusOr<std::unique_ptr<Booster>> b = Booster::FromJson(model_json, threads);
      if (!b.ok()) return ParamError("model", b.status().message());
      booster = std::move(*b);
    }
    absl::StatusOr<Ensemble> parsed = booster ? ParseXgboostJson(model_json, "model") : absl::StatusOr<Ensemble>();
    if (booster && !parsed.ok()) return parsed.status();
    if (booster) {
      opts.objective = parsed->objective_name;
      opts.num_class = parsed->K() > 1 ? parsed->K() : 0;
      opts.n_estimators = parsed->rounds;
      opts.base_score = parsed->base_score;
      if (parsed->num_features != train.cols) {
        return ParamError("model", absl::StrCat("has ", parsed->num_features, " features, data has ", train.cols));
      }
    } else {
      opts.objective = p.objective() == "auto" ? DetectObjective(train.y) : p.objective();
      if (absl::StartsWith(opts.objective, "multi:")) {
        const double top = std::max(*std::max_element(train.y.begin(), train.y.end()),
                                    *std::max_element(test.y.begin(), test.y.end()));
        opts.num_class = std::max(2, static_cast<int>(top) + 1);
      }
    }
    const int num_class = std::max(opts.num_class, 1);
    if (absl::Status s = CheckLabels(opts.objective, num_class, train, "label"); !s.ok()) return s;
    if (absl::Status s = CheckLabels(opts.objective, num_class, test, "label"); !s.ok()) return s;
    if (!booster) {
      const auto fit_start = std::chrono::steady_clock::now();
      absl::StatusOr<std::unique_ptr<Booster>> b = Booster::Train(train, opts);
      if (!b.ok()) return b.status();
      fit_seconds = seconds_since(fit_start);
      booster = std::move(*b);
      absl::StatusOr<std::string> json = booster->SaveJson();
      if (!json.ok()) return json.status();
      model_json = std::move(*json);
      parsed = ParseXgboostJson(model_json, "model");
      if (!parsed.ok()) return parsed.status();
    }
    const Ensemble& model = *parsed;
    ctx.Log(absl::StrFormat("%s: %s, %d rounds × %d trees, %d train × %d test rows, %d features; method %s, threads %d",
                            kName, model.objective_name, model.rounds, model.K(), train.rows, test.rows, train.cols,
                            p.method(), threads));
    if (absl::Status s = ctx.CheckContinue(); !s.ok()) return s;

    // Check 1: Loupe's trees reproduce XGBoost's margins.
    double margin_error = 0;
    for (const Table* t : {&train, &test}) {
      absl::StatusOr<std::vector<double>> xgb = booster->PredictMargin(*t);
      if (!xgb.ok()) return xgb.status();
      std::vector<double> f(static_cast<size_t>(model.K()));
      for (int64_t i = 0; i < t->rows; ++i) {
        model.Margin(t->row(i), f.data());
        for (int c = 0; c < model.K(); ++c) {
          const double ref = (*xgb)[static_cast<size_t>(i * model.K() + c)];
          margin_error = std::max(margin_error, std::abs(f[static_cast<size_t>(c)] - ref) / (1.0 + std::abs(ref)));
        }
      }
    }
    ctx.SetResult("margin_max_abs_error", margin_error);
    if (margin_error > 1e-4) {
      return absl::InternalError(absl::StrFormat(
          "%s: the parsed model does not reproduce XGBoost's margins (largest relative gap %.3g); refusing to "
          "explain a model Loupe cannot represent", kName, margin_error));
    }
    // Check 2: replaying boosting reproduces every leaf value.
    Hyper hyper{opts.learning_rate, opts.reg_lambda, opts.min_child_weight};
    const RowsPass replay = ReplayRows(model, train, threads);
    const double leaf_error = MaxLeafValueError(model, ComputeLeafStats(model, replay), hyper);
    ctx.SetResult("leaf_value_max_abs_error", leaf_error);
    if (leaf_error > 1e-4) {
      return ParamError(booster && p.has_model() ? "model" : "learning_rate",
                        absl::StrFormat("stored leaf values differ from −η·G/(H+λ) replayed on data by up to %.3g: "
                                        "the model was not trained on this data with learning_rate=%g, reg_lambda=%g, "
                                        "min_child_weight=%g (or used subsample, reg_alpha, max_delta_step or weights, "
                                        "which the estimators do not model)",
                                        leaf_error, opts.learning_rate, opts.reg_lambda, opts.min_child_weight));
    }
    {
      absl::StatusOr<std::vector<double>> m = booster->PredictMargin(test);
      if (!m.ok()) return m.status();
      const std::vector<double> losses = RowLosses(model.loss, *m, test.y);
      ctx.SetResult("test_loss", std::accumulate(losses.begin(), losses.end(), 0.0) / static_cast<double>(test.rows));
      if (model.loss.objective != Objective::kSquaredError) {
        double correct = 0;
        for (int64_t e = 0; e < test.rows; ++e) {
          const double* f = &(*m)[static_cast<size_t>(e * model.K())];
          const int pred = model.K() == 1 ? (f[0] >= 0) : static_cast<int>(std::max_element(f, f + model.K()) - f);
          correct += pred == static_cast<int>(test.y[static_cast<size_t>(e)]);
        }
        ctx.SetResult("test_accuracy", correct / static_cast<double>(test.rows));
      }
    }
    ctx.SetResult("fit_seconds", fit_seconds);
    ctx.SetResult("n_train", static_cast<double>(train.rows));
    ctx.SetResult("n_test", static_cast<double>(test.rows));
    if (absl::Status s = ctx.WriteArtifact(kModelFile, model_json, "application/json"); !s.ok()) return s;

    // Influence.
    ExplainInput in;
    in.model = &model;
    in.train = &train;
    in.test = &test;
    in.hyper = hyper;
    in.retrain = opts;
    in.threads = threads;
    in.seed = seed;
    in.update_set = p.update_set();
    in.subsample_models = p.subsample_models();
    in.subsample_fraction = p.subsample_fraction();
    in.trex_lambda = p.trex_lambda();
    in.check = [&ctx] { return ctx.CheckContinue(); };
    in.progress = [&ctx](int64_t done, int64_t total) { ctx.ReportProgress(done, total); };
    const auto inf_start = std::chrono::steady_clock::now();
    absl::StatusOr<InfluenceMatrix> influence = ComputeInfluence(p.method(), in);
    if (!influence.ok()) return influence.status();
    const double influence_seconds = seconds_since(inf_start);
    ctx.SetResult("influence_seconds", influence_seconds);
    ctx.Log(absl::StrFormat("%s: %s took %.3f s (fit %.3f s)", kName, p.method(), influence_seconds, fit_seconds));
    if (absl::Status s = WriteInfluence(*influence, train, test, train_rows, test_rows, p, model, ctx); !s.ok()) return s;

    // Evaluations.
    EvalOptions eo;
    eo.method = p.method();
    eo.test_points = p.eval_test_points();
    eo.noise_fraction = p.noise_fraction();
    eo.compare_methods = SplitList(p.compare_methods());
    for (const std::string& e : SplitList(p.evaluation())) {
      if (e == "none") continue;
      if (absl::Status s = ctx.CheckContinue(); !s.ok()) return s;
      const auto eval_start = std::chrono::steady_clock::now();
      absl::StatusOr<EvalReport> report = RunEvaluation(e, in, *influence, eo);
      if (!report.ok()) return report.status();
      for (const auto& [k, v] : report->summary) ctx.SetResult(k, v);
      ctx.ReportMetrics(0, report->summary);
      if (absl::Status s = ctx.WriteArtifact(absl::StrCat("eval_", e, ".csv"), report->csv, "text/csv"); !s.ok()) return s;
      if (absl::Status s = ctx.WriteArtifact(absl::StrCat("eval_", e, ".json"), report->json, "application/json"); !s.ok()) return s;
      ctx.Log(absl::StrFormat("%s: evaluation %s done in %.1f s", kName, e, seconds_since(eval_start)));
    }
    ctx.Log(absl::StrFormat("%s: done in %.1f s", kName, seconds_since(started)));
    return absl::OkStatus();
  }

 private:
  static absl::Status WriteInfluence(const InfluenceMatrix& inf, const Table& train, const Table& test,
                                     const std::vector<int64_t>& train_rows, const std::vector<int64_t>& test_rows,
                                     const GbdtInfluenceParams& p, const Ensemble& model, JobContext& ctx) {
    std::vector<float> values(inf.values.begin(), inf.values.end());
    safetensors::TensorDataMap tensors;
    tensors["influence"] = {safetensors::DType::kF32, {inf.n_train, inf.n_test},
                            absl::string_view(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float))};
    tensors["train_rows"] = {safetensors::DType::kI64, {inf.n_train},
                             absl::string_view(reinterpret_cast<const char*>(train_rows.data()), train_rows.size() * 8)};
    tensors["test_rows"] = {safetensors::DType::kI64, {inf.n_test},
                            absl::string_view(reinterpret_cast<const char*>(test_rows.data()), test_rows.size() * 8)};
    safetensors::Metadata meta = {{"method", p.method()},
                                  {"objective", model.objective_name},
                                  {"sign", "positive = helpful: removing the training row raises the test row's loss"},
                                  {"layout", "influence[i, e]: training row train_rows[i], test row test_rows[e]"}};
    absl::StatusOr<std::string> bytes = safetensors::Serialize(tensors, meta);
    if (!bytes.ok()) return bytes.status();
    if (absl::Status s = ctx.WriteArtifact(kInfluenceFile, *bytes, "application/octet-stream"); !s.ok()) return s;

    std::ostringstream csv;
    csv << "test_row,test_label,direction,rank,train_row,train_label,influence\n";
    const int64_t k = std::min<int64_t>(p.top_k(), inf.n_train);
    std::vector<int64_t> order(static_cast<size_t>(inf.n_train));
    for (int64_t e = 0; e < inf.n_test; ++e) {
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return inf.at(a, e) > inf.at(b, e); });
      for (int dir = 0; dir < 2; ++dir) {
        for (int64_t r = 0; r < k; ++r) {
          const int64_t i = dir == 0 ? order[static_cast<size_t>(r)] : order[static_cast<size_t>(inf.n_train - 1 - r)];
          csv << test_rows[static_cast<size_t>(e)] << "," << Csv(test.y[static_cast<size_t>(e)]) << ","
              << (dir == 0 ? "helpful" : "harmful") << "," << r + 1 << "," << train_rows[static_cast<size_t>(i)] << ","
              << Csv(train.y[static_cast<size_t>(i)]) << "," << Csv(inf.at(i, e)) << "\n";
        }
      }
    }
    return ctx.WriteArtifact(kTopRowsFile, csv.str(), "text/csv");
  }
};

}  // namespace

std::unique_ptr<JobKind> MakeGbdtInfluenceKind() { return std::make_unique<GbdtInfluenceKind>(); }

}  // namespace loupe
