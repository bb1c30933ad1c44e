#include "workers/gbdt/evaluation.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "workers/gbdt/parallel.h"

namespace loupe::gbdt {
namespace {

using Json = nlohmann::json;

absl::Status EvalError(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("gbdt.influence parameter 'evaluation': ", what));
}

struct Metrics {
  double loss = 0, accuracy = NAN, auc = NAN;
};

Metrics Score(const Loss& loss, const std::vector<double>& margins, const std::vector<double>& y) {
  Metrics m;
  const size_t n = y.size();
  const int K = loss.num_class;
  std::vector<double> losses = RowLosses(loss, margins, y);
  m.loss = std::accumulate(losses.begin(), losses.end(), 0.0) / static_cast<double>(n);
  if (loss.objective == Objective::kSquaredError) return m;
  double correct = 0;
  std::vector<double> score(n);
  for (size_t e = 0; e < n; ++e) {
    const double* f = &margins[e * static_cast<size_t>(K)];
    const int predicted = K == 1 ? (f[0] >= 0 ? 1 : 0) : static_cast<int>(std::max_element(f, f + K) - f);
    correct += predicted == static_cast<int>(y[e]);
    score[e] = f[0];
  }
  m.accuracy = correct / static_cast<double>(n);
  if (K == 1) m.auc = Auc(score, y);
  return m;
}

// Retrains with `options` (one XGBoost thread) and scores `test`.
absl::StatusOr<Metrics> RetrainScore(const Table& train, const Table& test, TrainOptions options, const Loss& loss) {
  options.threads = 1;
  absl::StatusOr<std::unique_ptr<Booster>> b = Booster::Train(train, options);
  if (!b.ok()) return b.status();
  absl::StatusOr<std::vector<double>> margins = (*b)->PredictMargin(test);
  if (!margins.ok()) return margins.status();
  return Score(loss, *margins, test.y);
}

std::vector<double> ColumnMeans(const Table& t) {
  std::vector<double> sum(static_cast<size_t>(t.cols), 0.0), cnt(static_cast<size_t>(t.cols), 0.0);
  for (int64_t i = 0; i < t.rows; ++i) {
    for (int64_t c = 0; c < t.cols; ++c) {
      if (!std::isnan(t.row(i)[c])) {
        sum[static_cast<size_t>(c)] += t.row(i)[c];
        cnt[static_cast<size_t>(c)] += 1;
      }
    }
  }
  for (size_t c = 0; c < sum.size(); ++c) sum[c] /= std::max(1.0, cnt[c]);
  return sum;
}

// A different label: the other class (binary), a uniformly drawn other class
// (multiclass), or another training row's target (regression).
double OtherLabel(const Ensemble& model, const Table& train, double y, std::mt19937_64& rng) {
  switch (model.loss.objective) {
    case Objective::kBinaryLogistic: return 1.0 - y;
    case Objective::kMulticlass: {
      std::uniform_int_distribution<int> shift(1, model.K() - 1);
      return static_cast<double>((static_cast<int>(y) + shift(rng)) % model.K());
    }
    case Objective::kSquaredError: {
      std::uniform_int_distribution<int64_t> pick(0, train.rows - 1);
      return train.y[static_cast<size_t>(pick(rng))];
    }
  }
  return y;
}

// Training rows ordered most helpful first for `score`.
std::vector<int64_t> RankDescending(const std::vector<double>& score) {
  std::vector<int64_t> order(score.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return score[static_cast<size_t>(a)] > score[static_cast<size_t>(b)]; });
  return order;
}

std::vector<int64_t> RandomOrder(int64_t n, uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  return order;
}

int64_t CountFor(double percent, int64_t n) {
  return std::min<int64_t>(n, static_cast<int64_t>(std::ceil(percent / 100.0 * static_cast<double>(n) - 1e-9)));
}

enum class Edit { kRemove, kRelabel, kPoison };

Table Edited(const ExplainInput& in, const std::vector<int64_t>& rows, Edit edit, const std::vector<double>& means,
             uint64_t seed) {
  const Table& train = *in.train;
  if (edit == Edit::kRemove) {
    std::vector<char> drop(static_cast<size_t>(train.rows), 0);
    for (int64_t r : rows) drop[static_cast<size_t>(r)] = 1;
    std::vector<int64_t> keep;
    for (int64_t i = 0; i < train.rows; ++i) if (!drop[static_cast<size_t>(i)]) keep.push_back(i);
    return train.Select(keep);
  }
  Table t = train;
  std::mt19937_64 rng(seed);
  for (int64_t r : rows) {
    t.y[static_cast<size_t>(r)] = OtherLabel(*in.model, train, train.y[static_cast<size_t>(r)], rng);
    if (edit == Edit::kPoison) {
      for (int64_t c = 0; c < t.cols; ++c) t.x[static_cast<size_t>(r * t.cols + c)] = static_cast<float>(means[static_cast<size_t>(c)]);
    }
  }
  return t;
}

std::string Fmt(double v) { return std::isfinite(v) ? absl::StrFormat("%.6g", v) : ""; }

struct StopFlag {
  std::atomic<bool> stop{false};
  absl::Status status;
  void Set(absl::Status s) {
    if (!stop.exchange(true)) status = std::move(s);
  }
};

absl::StatusOr<EvalReport> SingleTestEdits(const std::string& name, Edit edit, const ExplainInput& in,
                                           const InfluenceMatrix& inf, const EvalOptions& o) {
  static const std::vector<double> kPercents = {0.1, 0.5, 1.0, 1.5, 2.0};
  const int64_t n = inf.n_train;
  std::vector<int64_t> points = RandomOrder(inf.n_test, in.seed + 17);
  points.resize(static_cast<size_t>(std::min<int64_t>(o.test_points, inf.n_test)));
  const int64_t P = static_cast<int64_t>(points.size()), NP = static_cast<int64_t>(kPercents.size());
  const std::vector<double> means = ColumnMeans(*in.train);
  std::vector<double> method_loss(static_cast<size_t>(P * NP)), random_loss(method_loss.size()), original(static_cast<size_t>(P));
  StopFlag stop;
  std::atomic<int64_t> done{0};
  ParallelFor(P, in.threads, [&](int64_t begin, int64_t end) {
    for (int64_t pi = begin; pi < end && !stop.stop; ++pi) {
      if (begin == 0) {
        if (absl::Status s = in.check(); !s.ok()) stop.Set(s);
        in.progress(done.load(), P);
      }
      const int64_t e = points[static_cast<size_t>(pi)];
      const Table point = in.test->Select({e});
      std::vector<double> column(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) column[static_cast<size_t>(i)] = inf.at(i, e);
      const std::vector<int64_t> ranked = RankDescending(column);
      const std::vector<int64_t> random = RandomOrder(n, in.seed * 1000003 + static_cast<uint64_t>(e));
      absl::StatusOr<Metrics> base = RetrainScore(*in.train, point, in.retrain, in.model->loss);
      if (!base.ok()) return stop.Set(base.status());
      original[static_cast<size_t>(pi)] = base->loss;
      for (int64_t q = 0; q < NP; ++q) {
        const int64_t k = CountFor(kPercents[static_cast<size_t>(q)], n);
        for (int which = 0; which < 2; ++which) {
          const std::vector<int64_t>& order = which == 0 ? ranked : random;
          std::vector<int64_t> rows(order.begin(), order.begin() + k);
          absl::StatusOr<Metrics> m = RetrainScore(Edited(in, rows, edit, means, in.seed + static_cast<uint64_t>(e)),
                                                   point, in.retrain, in.model->loss);
          if (!m.ok()) return stop.Set(m.status());
          (which == 0 ? method_loss : random_loss)[static_cast<size_t>(pi * NP + q)] = m->loss;
        }
      }
      ++done;
    }
  });
  if (stop.stop) return stop.status;
  EvalReport r;
  r.name = name;
  std::ostringstream csv;
  csv << "edit,percent,rows_edited,test_points,method,method_loss,random_loss,original_loss,method_minus_random\n";
  Json j = {{"evaluation", name}, {"method", o.method}, {"test_rows", points}, {"percent", kPercents}};
  const double orig = std::accumulate(original.begin(), original.end(), 0.0) / static_cast<double>(P);
  double gain = 0;
  for (int64_t q = 0; q < NP; ++q) {
    double ml = 0, rl = 0;
    for (int64_t pi = 0; pi < P; ++pi) {
      ml += method_loss[static_cast<size_t>(pi * NP + q)];
      rl += random_loss[static_cast<size_t>(pi * NP + q)];
    }
    ml /= static_cast<double>(P);
    rl /= static_cast<double>(P);
    gain += (ml - rl) / static_cast<double>(NP);
    csv << name << "," << kPercents[static_cast<size_t>(q)] << "," << CountFor(kPercents[static_cast<size_t>(q)], n) << ","
        << P << "," << o.method << "," << Fmt(ml) << "," << Fmt(rl) << "," << Fmt(orig) << "," << Fmt(ml - rl) << "\n";
    j["method_loss"].push_back(ml);
    j["random_loss"].push_back(rl);
    if (q == NP - 1) {
      r.summary[name + "_loss_2pct"] = ml;
      r.summary[name + "_random_loss_2pct"] = rl;
    }
  }
  r.summary[name + "_loss_gain_vs_random"] = gain;
  j["original_loss"] = orig;
  j["per_point_method_loss"] = method_loss;  // [point][percent], row-major
  j["per_point_random_loss"] = random_loss;
  r.csv = csv.str();
  r.json = j.dump(1);
  return r;
}

// Splits explained test columns into a ranking half and a measuring half.
void HalfSplit(int64_t n_test, std::vector<int64_t>& rank_half, std::vector<int64_t>& measure_half) {
  for (int64_t e = 0; e < n_test; ++e) (e % 2 == 0 ? rank_half : measure_half).push_back(e);
}

absl::StatusOr<EvalReport> TestSetRemoval(const ExplainInput& in, const InfluenceMatrix& inf, const EvalOptions& o) {
  if (inf.n_test < 2) return EvalError("test_set needs at least 2 test rows");
  std::vector<int64_t> A, B;
  HalfSplit(inf.n_test, A, B);
  const Table measure = in.test->Select(B);
  std::vector<double> total(static_cast<size_t>(inf.n_train), 0.0);
  for (int64_t i = 0; i < inf.n_train; ++i) for (int64_t e : A) total[static_cast<size_t>(i)] += inf.at(i, e);
  const std::vector<int64_t> ranked = RankDescending(total), random = RandomOrder(inf.n_train, in.seed + 29);
  std::vector<double> percents;
  for (int p = 0; p <= 50; p += 5) percents.push_back(p);
  std::vector<Metrics> mm(percents.size()), rm(percents.size());
  StopFlag stop;
  ParallelFor(static_cast<int64_t>(percents.size()) * 2, in.threads, [&](int64_t begin, int64_t end) {
    for (int64_t job = begin; job < end && !stop.stop; ++job) {
      if (begin == 0) if (absl::Status s = in.check(); !s.ok()) stop.Set(s);
      const size_t q = static_cast<size_t>(job / 2);
      const std::vector<int64_t>& order = job % 2 == 0 ? ranked : random;
      std::vector<int64_t> rows(order.begin(), order.begin() + CountFor(percents[q], inf.n_train));
      absl::StatusOr<Metrics> m = RetrainScore(Edited(in, rows, Edit::kRemove, {}, 0), measure, in.retrain, in.model->loss);
      if (!m.ok()) return stop.Set(m.status());
      (job % 2 == 0 ? mm : rm)[q] = *m;
    }
  });
  if (stop.stop) return stop.status;
  EvalReport r;
  r.name = "test_set";
  std::ostringstream csv;
  csv << "percent,rows_removed,method,method_loss,method_accuracy,method_auc,random_loss,random_accuracy,random_auc\n";
  Json j = {{"evaluation", "test_set"}, {"method", o.method}, {"ranking_test_rows", A}, {"measured_test_rows", B},
            {"percent", percents}};
  for (size_t q = 0; q < percents.size(); ++q) {
    csv << percents[q] << "," << CountFor(percents[q], inf.n_train) << "," << o.method << "," << Fmt(mm[q].loss) << ","
        << Fmt(mm[q].accuracy) << "," << Fmt(mm[q].auc) << "," << Fmt(rm[q].loss) << "," << Fmt(rm[q].accuracy) << ","
        << Fmt(rm[q].auc) << "\n";
    j["method_loss"].push_back(mm[q].loss);
    j["random_loss"].push_back(rm[q].loss);
    j["method_accuracy"].push_back(mm[q].accuracy);
    j["random_accuracy"].push_back(rm[q].accuracy);
    j["method_auc"].push_back(mm[q].auc);
    j["random_auc"].push_back(rm[q].auc);
  }
  r.summary["test_set_loss_10pct"] = mm[2].loss;
  r.summary["test_set_random_loss_10pct"] = rm[2].loss;
  r.csv = csv.str();
  r.json = j.dump(1);
  return r;
}

absl::StatusOr<EvalReport> NoiseDetection(const ExplainInput& in, const EvalOptions& o) {
  if (in.model->loss.objective == Objective::kSquaredError) {
    return EvalError("noise (label-noise detection) needs a classification objective");
  }
  if (in.test->rows < 2) return EvalError("noise needs at least 2 test rows");
  const int64_t n = in.train->rows;
  const int64_t n_noisy = std::max<int64_t>(1, std::llround(o.noise_fraction * static_cast<double>(n)));
  const std::vector<int64_t> noisy_rows = [&] {
    std::vector<int64_t> order = RandomOrder(n, in.seed + 41);
    order.resize(static_cast<size_t>(n_noisy));
    return order;
  }();
  std::vector<char> is_noisy(static_cast<size_t>(n), 0);
  for (int64_t r : noisy_rows) is_noisy[static_cast<size_t>(r)] = 1;
  Table noisy = Edited(in, noisy_rows, Edit::kRelabel, {}, in.seed + 43);
  TrainOptions opts = in.retrain;
  opts.threads = in.threads;
  absl::StatusOr<std::unique_ptr<Booster>> booster = Booster::Train(noisy, opts);
  if (!booster.ok()) return booster.status();
  absl::StatusOr<std::string> json = (*booster)->SaveJson();
  if (!json.ok()) return json.status();
  absl::StatusOr<Ensemble> model = ParseXgboostJson(*json, "model");
  if (!model.ok()) return model.status();
  std::vector<int64_t> A, B;
  HalfSplit(in.test->rows, A, B);
  const Table rank_rows = in.test->Select(A), measure = in.test->Select(B);
  ExplainInput noisy_in = in;
  noisy_in.model = &*model;
  noisy_in.train = &noisy;
  noisy_in.test = &rank_rows;
  absl::StatusOr<InfluenceMatrix> inf = ComputeInfluence(o.method, noisy_in);
  if (!inf.ok()) return inf.status();
  std::vector<double> harm(static_cast<size_t>(n), 0.0);
  for (int64_t i = 0; i < n; ++i) for (int64_t e = 0; e < inf->n_test; ++e) harm[static_cast<size_t>(i)] -= inf->at(i, e);
  const std::vector<int64_t> ranked = RankDescending(harm), random = RandomOrder(n, in.seed + 47);
  std::vector<double> percents;
  for (int p = 0; p <= 30; p += 5) percents.push_back(p);
  std::vector<double> found_m(percents.size()), found_r(percents.size());
  std::vector<Metrics> mm(percents.size()), rm(percents.size());
  StopFlag stop;
  ParallelFor(static_cast<int64_t>(percents.size()) * 2, in.threads, [&](int64_t begin, int64_t end) {
    for (int64_t job = begin; job < end && !stop.stop; ++job) {
      if (begin == 0) if (absl::Status s = in.check(); !s.ok()) stop.Set(s);
      const size_t q = static_cast<size_t>(job / 2);
      const std::vector<int64_t>& order = job % 2 == 0 ? ranked : random;
      Table fixed = noisy;
      int64_t found = 0;
      for (int64_t r = 0; r < CountFor(percents[q], n); ++r) {
        const int64_t row = order[static_cast<size_t>(r)];
        if (is_noisy[static_cast<size_t>(row)]) {
          ++found;
          fixed.y[static_cast<size_t>(row)] = in.train->y[static_cast<size_t>(row)];
        }
      }
      absl::StatusOr<Metrics> m = RetrainScore(fixed, measure, in.retrain, in.model->loss);
      if (!m.ok()) return stop.Set(m.status());
      (job % 2 == 0 ? mm : rm)[q] = *m;
      (job % 2 == 0 ? found_m : found_r)[q] = static_cast<double>(found) / static_cast<double>(n_noisy);
    }
  });
  if (stop.stop) return stop.status;
  EvalReport r;
  r.name = "noise";
  std::ostringstream csv;
  csv << "percent_checked,rows_checked,method,method_fraction_found,method_loss,method_accuracy,random_fraction_found,"
         "random_loss,random_accuracy\n";
  Json j = {{"evaluation", "noise"}, {"method", o.method}, {"noise_fraction", o.noise_fraction},
            {"noisy_rows", n_noisy}, {"percent_checked", percents}, {"method_fraction_found", found_m},
            {"random_fraction_found", found_r}};
  for (size_t q = 0; q < percents.size(); ++q) {
    csv << percents[q] << "," << CountFor(percents[q], n) << "," << o.method << "," << Fmt(found_m[q]) << ","
        << Fmt(mm[q].loss) << "," << Fmt(mm[q].accuracy) << "," << Fmt(found_r[q]) << "," << Fmt(rm[q].loss) << ","
        << Fmt(rm[q].accuracy) << "\n";
    j["method_loss"].push_back(mm[q].loss);
    j["random_loss"].push_back(rm[q].loss);
  }
  r.summary["noise_fraction_found_10pct"] = found_m[2];
  r.summary["noise_random_fraction_found_10pct"] = found_r[2];
  r.summary["noise_fraction_found_30pct"] = found_m.back();
  r.csv = csv.str();
  r.json = j.dump(1);
  return r;
}

absl::StatusOr<EvalReport> Agreement(const ExplainInput& in, const InfluenceMatrix& inf, const EvalOptions& o) {
  std::vector<std::string> names = {o.method};
  for (const std::string& m : o.compare_methods) if (m != o.method) names.push_back(m);
  std::vector<InfluenceMatrix> mats = {inf};
  for (size_t k = 1; k < names.size(); ++k) {
    absl::StatusOr<InfluenceMatrix> m = ComputeInfluence(names[k], in);
    if (!m.ok()) return m.status();
    mats.push_back(std::move(*m));
  }
  EvalReport r;
  r.name = "agreement";
  std::ostringstream csv;
  csv << "method_a,method_b,pearson,spearman,jaccard_top10\n";
  Json j = {{"evaluation", "agreement"}, {"methods", names}};
  const size_t M = names.size();
  std::vector<std::vector<double>> P(M, std::vector<double>(M, 1.0)), S = P, Jc = P;
  for (size_t a = 0; a < M; ++a) {
    for (size_t b = a + 1; b < M; ++b) {
      double p = 0, s = 0, jac = 0;
      std::vector<double> ca(static_cast<size_t>(inf.n_train)), cb(ca.size());
      for (int64_t e = 0; e < inf.n_test; ++e) {
        for (int64_t i = 0; i < inf.n_train; ++i) {
          ca[static_cast<size_t>(i)] = mats[a].at(i, e);
          cb[static_cast<size_t>(i)] = mats[b].at(i, e);
        }
        p += Pearson(ca, cb);
        s += Spearman(ca, cb);
        jac += JaccardTop(ca, cb, 0.1);
      }
      const double nt = static_cast<double>(inf.n_test);
      P[a][b] = P[b][a] = p / nt;
      S[a][b] = S[b][a] = s / nt;
      Jc[a][b] = Jc[b][a] = jac / nt;
      csv << names[a] << "," << names[b] << "," << Fmt(p / nt) << "," << Fmt(s / nt) << "," << Fmt(jac / nt) << "\n";
      if (a == 0) {
        r.summary["agreement_spearman_" + names[b]] = s / nt;
        r.summary["agreement_jaccard_top10_" + names[b]] = jac / nt;
      }
    }
  }
  j["pearson"] = P;
  j["spearman"] = S;
  j["jaccard_top10"] = Jc;
  r.csv = csv.str();
  r.json = j.dump(1);
  return r;
}

std::vector<double> Ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> rank(v.size());
  for (size_t s = 0; s < order.size();) {
    size_t t = s;
    while (t + 1 < order.size() && v[order[t + 1]] == v[order[s]]) ++t;
    for (size_t k = s; k <= t; ++k) rank[order[k]] = 0.5 * static_cast<double>(s + t);  // ties share the mean rank
    s = t + 1;
  }
  return rank;
}

}  // namespace

const std::vector<std::string>& EvaluationNames() {
  static const auto* names = new std::vector<std::string>{"remove", "relabel", "poison", "test_set", "noise", "agreement"};
  return *names;
}

double Pearson(const std::vector<double>& a, const std::vector<double>& b) {
  const double n = static_cast<double>(a.size());
  const double ma = std::accumulate(a.begin(), a.end(), 0.0) / n, mb = std::accumulate(b.begin(), b.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

double Spearman(const std::vector<double>& a, const std::vector<double>& b) { return Pearson(Ranks(a), Ranks(b)); }

double JaccardTop(const std::vector<double>& a, const std::vector<double>& b, double fraction) {
  const size_t k = std::max<size_t>(1, static_cast<size_t>(std::llround(fraction * static_cast<double>(a.size()))));
  std::vector<int64_t> ta = RankDescending(a), tb = RankDescending(b);
  ta.resize(k);
  tb.resize(k);
  std::sort(ta.begin(), ta.end());
  std::sort(tb.begin(), tb.end());
  std::vector<int64_t> common;
  std::set_intersection(ta.begin(), ta.end(), tb.begin(), tb.end(), std::back_inserter(common));
  return static_cast<double>(common.size()) / static_cast<double>(2 * k - common.size());
}

double Auc(const std::vector<double>& score, const std::vector<double>& label) {
  const std::vector<double> rank = Ranks(score);
  double pos = 0, rank_sum = 0;
  for (size_t i = 0; i < label.size(); ++i) {
    if (label[i] > 0.5) {
      pos += 1;
      rank_sum += rank[i] + 1;
    }
  }
  const double neg = static_cast<double>(label.size()) - pos;
  if (pos == 0 || neg == 0) return NAN;
  return (rank_sum - pos * (pos + 1) / 2) / (pos * neg);
}

absl::StatusOr<EvalReport> RunEvaluation(const std::string& name, const ExplainInput& in,
                                         const InfluenceMatrix& influence, const EvalOptions& options) {
  if (name == "remove") return SingleTestEdits(name, Edit::kRemove, in, influence, options);
  if (name == "relabel") return SingleTestEdits(name, Edit::kRelabel, in, influence, options);
  if (name == "poison") return SingleTestEdits(name, Edit::kPoison, in, influence, options);
  if (name == "test_set") return TestSetRemoval(in, influence, options);
  if (name == "noise") return NoiseDetection(in, options);
  if (name == "agreement") return Agreement(in, influence, options);
  return EvalError(absl::StrCat("unknown evaluation '", name, "'"));
}

}  // namespace loupe::gbdt
