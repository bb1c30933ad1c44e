#include "workers/gbdt/ensemble.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace loupe::gbdt {
namespace {

constexpr double kHessianFloor = 1e-16;  // XGBoost's eps for logistic/softmax
constexpr double kProbFloor = 1e-15;     // keeps log-loss finite

double Sigmoid(double f) { return 1.0 / (1.0 + std::exp(-f)); }

void Softmax(const double* f, int k, double* p) {
  const double m = *std::max_element(f, f + k);
  double z = 0;
  for (int c = 0; c < k; ++c) z += (p[c] = std::exp(f[c] - m));
  for (int c = 0; c < k; ++c) p[c] /= z;
}

absl::Status ModelError(const std::string& field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("gbdt.influence parameter '", field,
                                                 "': not a usable XGBoost JSON model: ", what));
}

// XGBoost writes numbers inside strings ("5E-1") in learner_model_param.
double NumberField(const nlohmann::json& j, double fallback) {
  if (j.is_number()) return j.get<double>();
  double v;
  if (j.is_string() && absl::SimpleAtod(j.get<std::string>(), &v)) return v;
  return fallback;
}

}  // namespace

double Loss::Value(const double* f, double y) const {
  switch (objective) {
    case Objective::kSquaredError:
      return 0.5 * (f[0] - y) * (f[0] - y);
    case Objective::kBinaryLogistic: {
      const double p = std::clamp(Sigmoid(f[0]), kProbFloor, 1 - kProbFloor);
      return -(y * std::log(p) + (1 - y) * std::log(1 - p));
    }
    case Objective::kMulticlass: {
      double p[256];
      Softmax(f, num_class, p);
      return -std::log(std::max(p[static_cast<int>(y)], kProbFloor));
    }
  }
  return 0;
}

void Loss::GradHess(const double* f, double y, double* g, double* h) const {
  switch (objective) {
    case Objective::kSquaredError:
      g[0] = f[0] - y;
      h[0] = 1;
      return;
    case Objective::kBinaryLogistic: {
      const double p = Sigmoid(f[0]);
      g[0] = p - y;
      h[0] = std::max(p * (1 - p), kHessianFloor);
      return;
    }
    case Objective::kMulticlass: {
      double p[256];
      Softmax(f, num_class, p);
      for (int c = 0; c < num_class; ++c) {
        g[c] = p[c] - (c == static_cast<int>(y) ? 1.0 : 0.0);
        h[c] = std::max(2 * p[c] * (1 - p[c]), kHessianFloor);
      }
      return;
    }
  }
}

void Loss::Predict(const double* f, double* out) const {
  switch (objective) {
    case Objective::kSquaredError: out[0] = f[0]; return;
    case Objective::kBinaryLogistic: out[0] = Sigmoid(f[0]); return;
    case Objective::kMulticlass: Softmax(f, num_class, out); return;
  }
}

int32_t Tree::Leaf(const float* x) const {
  int32_t n = 0;
  while (left[static_cast<size_t>(n)] >= 0) {
    const float v = x[feature[static_cast<size_t>(n)]];
    const bool go_left = std::isnan(v) ? default_left[static_cast<size_t>(n)] != 0 : v < threshold[static_cast<size_t>(n)];
    n = go_left ? left[static_cast<size_t>(n)] : right[static_cast<size_t>(n)];
  }
  return leaf_id[static_cast<size_t>(n)];
}

void Ensemble::Margin(const float* x, double* f) const {
  for (int c = 0; c < K(); ++c) f[c] = base_margin;
  for (int64_t t = 0; t < rounds; ++t) {
    for (int c = 0; c < K(); ++c) {
      const Tree& tr = tree(t, c);
      f[c] += tr.value[static_cast<size_t>(tr.leaf_node[static_cast<size_t>(tr.Leaf(x))])];
    }
  }
}

absl::StatusOr<Ensemble> ParseXgboostJson(const std::string& text, const std::string& field) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return ModelError(field, "the file is not JSON");
  if (!j.contains("learner")) return ModelError(field, "no 'learner' object (is this XGBoost's JSON model?)");
  const nlohmann::json& learner = j["learner"];
  Ensemble e;
  try {
    e.objective_name = learner.at("objective").at("name").get<std::string>();
    const nlohmann::json& mp = learner.at("learner_model_param");
    e.base_score = NumberField(mp.at("base_score"), 0.5);
    e.num_features = static_cast<int64_t>(NumberField(mp.at("num_feature"), 0));
    const int num_class = static_cast<int>(NumberField(mp.value("num_class", nlohmann::json("0")), 0));
    if (e.objective_name == "reg:squarederror") {
      e.loss = {Objective::kSquaredError, 1};
      e.base_margin = e.base_score;
    } else if (e.objective_name == "binary:logistic") {
      e.loss = {Objective::kBinaryLogistic, 1};
      if (!(e.base_score > 0 && e.base_score < 1)) return ModelError(field, "binary:logistic base_score outside (0, 1)");
      e.base_margin = std::log(e.base_score / (1 - e.base_score));
    } else if (e.objective_name == "multi:softprob" || e.objective_name == "multi:softmax") {
      if (num_class < 2 || num_class > 256) return ModelError(field, "num_class must be in [2, 256]");
      e.loss = {Objective::kMulticlass, num_class};
      e.base_margin = e.base_score;  // softmax's ProbToMargin is the identity in 1.7
    } else {
      return ModelError(field, absl::StrCat("objective '", e.objective_name,
                                            "' is not supported (reg:squarederror, binary:logistic, "
                                            "multi:softprob, multi:softmax)"));
    }
    const nlohmann::json& gb = learner.at("gradient_booster");
    if (gb.at("name").get<std::string>() != "gbtree") return ModelError(field, "only the gbtree booster is supported");
    const nlohmann::json& model = gb.at("model");
    if (NumberField(model.at("gbtree_model_param").value("num_parallel_tree", nlohmann::json("1")), 1) != 1) {
      return ModelError(field, "num_parallel_tree > 1 (random forests) is not supported");
    }
    const nlohmann::json& trees = model.at("trees");
    const nlohmann::json& tree_info = model.at("tree_info");
    const int k = e.K();
    if (trees.size() % static_cast<size_t>(k) != 0) return ModelError(field, "tree count is not a multiple of num_class");
    e.rounds = static_cast<int64_t>(trees.size()) / k;
    e.trees.resize(trees.size());
    for (size_t i = 0; i < trees.size(); ++i) {
      if (tree_info.at(i).get<int>() != static_cast<int>(i % static_cast<size_t>(k))) {
        return ModelError(field, "trees are not interleaved one per class per round");
      }
      const nlohmann::json& t = trees[i];
      if (!t.at("categories").empty()) return ModelError(field, "categorical splits are not supported");
      Tree& tr = e.trees[i];
      tr.left = t.at("left_children").get<std::vector<int32_t>>();
      tr.right = t.at("right_children").get<std::vector<int32_t>>();
      tr.feature = t.at("split_indices").get<std::vector<int32_t>>();
      tr.threshold = t.at("split_conditions").get<std::vector<float>>();
      tr.default_left = t.at("default_left").get<std::vector<uint8_t>>();
      const size_t n = tr.left.size();
      if (tr.right.size() != n || tr.feature.size() != n || tr.threshold.size() != n || tr.default_left.size() != n) {
        return ModelError(field, absl::StrCat("tree ", i, " has arrays of different lengths"));
      }
      tr.value.assign(n, 0.0);
      tr.leaf_id.assign(n, -1);
      // Dense leaf ids in pre-order, left first (the anchor's numbering).
      std::vector<int32_t> stack = {0};
      while (!stack.empty()) {
        const int32_t node = stack.back();
        stack.pop_back();
        if (node < 0 || static_cast<size_t>(node) >= n) return ModelError(field, absl::StrCat("tree ", i, " has a bad child index"));
        if (tr.left[static_cast<size_t>(node)] < 0) {
          tr.leaf_id[static_cast<size_t>(node)] = tr.num_leaves();
          tr.leaf_node.push_back(node);
          tr.value[static_cast<size_t>(node)] = tr.threshold[static_cast<size_t>(node)];
        } else {
          if (tr.feature[static_cast<size_t>(node)] < 0 || tr.feature[static_cast<size_t>(node)] >= e.num_features) {
            return ModelError(field, absl::StrCat("tree ", i, " splits on feature ", tr.feature[static_cast<size_t>(node)],
                                                  " of ", e.num_features));
          }
          stack.push_back(tr.right[static_cast<size_t>(node)]);
          stack.push_back(tr.left[static_cast<size_t>(node)]);
        }
        if (stack.size() > n) return ModelError(field, absl::StrCat("tree ", i, " is not a tree"));
      }
    }
  } catch (const nlohmann::json::exception& ex) {
    return ModelError(field, ex.what());
  }
  if (e.rounds == 0) return ModelError(field, "the model has no trees");
  return e;
}

}  // namespace loupe::gbdt
