#include "workers/dark_matter/analysis.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "workers/dark_matter/decomposition.h"
#include "workers/dark_matter/pursuit.h"
#include "workers/dark_matter/regression.h"
#include "workers/dark_matter/scaling.h"
#include "workers/lm/activations/splice.h"

namespace loupe::dark_matter {

namespace {

using json = nlohmann::ordered_json;

// NaN/inf are not JSON: they become null.
json Num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }
std::string Cell(double v) { return std::isfinite(v) ? absl::StrFormat("%.6g", v) : std::string("nan"); }

std::string CsvEscape(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// Rows of `t` selected by `idx` (CPU int64).
torch::Tensor Rows(const torch::Tensor& t, const torch::Tensor& idx) { return t.index_select(0, idx.to(t.device())); }

struct PerSae {
  const SaeHandle* sae;
  torch::Tensor x_hat, l0;
  Decomposition dec;
  DecompositionStats stats;
};

}  // namespace

std::string CsvTable::Text() const {
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::vector<std::string> esc;
    for (const auto& c : cells) esc.push_back(CsvEscape(c));
    absl::StrAppend(&out, absl::StrJoin(esc, ","), "\n");
  };
  line(header);
  for (const auto& r : rows) line(r);
  return out;
}

const json& Definitions() {
  static const json* defs = new json{
      {"x", "activation row at the hook, one per token"},
      {"tokens", "activation rows analysed"},
      {"train_tokens", "rows that fit every regression"},
      {"test_tokens", "held-out rows every R² and FVU is measured on"},
      {"d_model", "width of the activation rows"},
      {"d_sae", "latents of the SAE"},
      {"k", "TopK k of the SAE"},
      {"c", "power law FVU(W) = c + a·W^m: the asymptote"},
      {"a", "power law: the scale"},
      {"m", "power law: the exponent (negative)"},
      {"sse", "power law: Σ (fitted − measured FVU)² over the SAEs"},
      {"fitted_fvu", "c + a·d_sae^m"},
      {"width", "columns of the predictor"},
      {"ce_splice_sequences", "sequences spliced for the CE analysis"},
      {"x_hat", "the SAE's reconstruction of x"},
      {"error", "e = x − x_hat"},
      {"W_star", "OLS (no intercept, no ridge) of e on x over the training rows: argmin_W Σ_train ||x W − e||²"},
      {"linear_error", "x W_star; W_star fit on training rows, applied to all rows"},
      {"nonlinear_error", "e − x W_star, so x = x_hat + linear_error + nonlinear_error"},
      {"split", "rows randomly permuted once (seed); the first train_fraction fit every regression, the rest "
                "(test) give every reported R² and FVU unless a field says otherwise"},
      {"r2", "held-out R² per output dimension (1 − SS_res/SS_tot, each dimension centred on its own test mean), "
             "averaged over dimensions with non-zero test variance"},
      {"fvu", "Σ||x − x_hat||² / Σ||x − mean(x)||² over test rows (mean of the test rows)"},
      {"normalized_mse", "mean over test rows of ||x − x_hat||² / ||x||²"},
      {"l0", "mean number of non-zero SAE codes per test row"},
      {"linear_error_r2", "R² of predicting e from x with W_star: the fraction of the error vector's variance "
                          "that is linearly predictable (in earlier_layers: the R² of linear_error from the predictor)"},
      {"error_norm_r2", "R² of predicting ||e||² from x by OLS without intercept"},
      {"xhat_norm_r2", "R² of predicting ||x_hat||² from x by OLS without intercept"},
      {"linear_norm_r2", "R² of predicting ||linear_error||² from x by OLS without intercept"},
      {"nonlinear_norm_r2", "R² of predicting ||nonlinear_error||² from x by OLS without intercept"},
      {"linear_fvu", "Σ||linear_error||² / Σ||x − mean(x)||² over test rows"},
      {"nonlinear_fvu", "Σ||nonlinear_error||² / Σ||x − mean(x)||² over test rows = FVU of x_hat + x W_star"},
      {"linear_norm_share", "Σ||linear_error||² / Σ||e||² over test rows (on training rows the two shares sum "
                            "to 1 exactly, OLS residuals being orthogonal to the fit)"},
      {"nonlinear_norm_share", "Σ||nonlinear_error||² / Σ||e||² over test rows"},
      {"max_identity_error", "max over all rows and dimensions of |x − (x_hat + linear_error + nonlinear_error)|"},
      {"baseline_from_x", "R² of ||e||² ~ [x, 1] (OLS with intercept), the paper's Fig 13 setting"},
      {"baseline_x_norm", "R² of ||e||² ~ [||x||, 1]"},
      {"baseline_l0", "R² of ||e||² ~ [L0, 1], L0 the SAE's non-zero count on that row"},
      {"baseline_token_id_mean", "R² of predicting ||e||² by the mean ||e||² of the row's token id over the "
                                 "training rows (ids unseen there: the training mean)"},
      {"token_ids_seen", "share of test rows whose token id occurs in the training rows"},
      {"per_token_r2", "R² of ||e_wide|| ~ [||e_narrow||, 1] (norms, not squared), fit on training rows"},
      {"per_token_r2_with_nonlinear", "R² of ||e_wide|| ~ [||e_narrow||, ||nonlinear_error_narrow||, 1]"},
      {"extra_variance_explained_pct", "(r2_with_nonlinear − r2) / (1 − r2) · 100"},
      {"power_law", "FVU(W) = c + a·W^m fit by least squares to (d_sae, test FVU) of every SAE"},
      {"absent_features", "FVU(W) − c: what wider SAEs would still explain"},
      {"linear_error_region", "c − mean over SAEs of nonlinear_fvu"},
      {"nonlinear_error_region", "mean over SAEs of nonlinear_fvu (the paper finds it roughly flat in width)"},
      {"error_sae_fvu", "test FVU of a TopK SAE trained on the target (e, linear_error or nonlinear_error of the "
                        "first SAE), of the target's own variance; all three trained with one budget"},
      {"error_sae_l0", "mean non-zero codes per test row of that SAE"},
      {"error_sae_dead_fraction", "share of its latents that never fire on the test rows"},
      {"ce_clean", "mean next-token CE of the unmodified model over positions >= skip_positions"},
      {"ce_x", "CE with x spliced in for itself (a check: equals ce_clean)"},
      {"ce_sae", "CE with x_hat in place of x at the hook"},
      {"ce_sae_plus_linear", "CE with x_hat + x W_star in place of x"},
      {"ce_sae_plus_nonlinear", "CE with x_hat + nonlinear_error (= x − x W_star) in place of x"},
      {"ce_zero", "CE with zeros in place of x"},
      {"linear_ce_recovered_pct", "(ce_sae − ce_sae_plus_linear) / (ce_sae − ce_clean) · 100"},
      {"nonlinear_ce_recovered_pct", "(ce_sae − ce_sae_plus_nonlinear) / (ce_sae − ce_clean) · 100"},
      {"linear_r2_pct", "linear_error_r2 · 100, beside linear_ce_recovered_pct"},
      {"linear_norm_pct", "linear_norm_share · 100"},
      {"nonlinear_norm_pct", "nonlinear_norm_share · 100"},
      {"pursuit_fvu", "FVU of gradient pursuit over the SAE's decoder with each token's own encoder L0, "
                      "non-negative codes, tokens frozen once their L0 is reached (encoder_pursuit.py)"},
      {"refined_fvu", "FVU after projected gradient steps on the encoder's own support (never above fvu)"},
      {"pursuit_nonlinear_fvu", "nonlinear_fvu of the pursuit reconstruction (its own W_star, same split)"},
      {"nonlinear_fvu_change", "pursuit_nonlinear_fvu − encoder nonlinear_fvu on the same tokens"},
      {"refined_nonlinear_fvu", "nonlinear_fvu of the refined reconstruction (its own W_star, same split)"},
      {"pursuit_linear_error_r2", "linear_error_r2 of the pursuit reconstruction's error"},
      {"final_train_fvu", "mean training-batch FVU over the last 10% of the error SAE's steps"},
      {"error_r2", "R² of predicting the first SAE's e from the predictor by OLS without intercept, fit on "
                   "training rows"},
      {"nonlinear_error_r2", "the same R² for the first SAE's nonlinear_error"},
      {"linear_error_sae_fvu", "error_sae_fvu of the SAE trained on linear_error"},
      {"nonlinear_error_sae_fvu", "error_sae_fvu of the SAE trained on nonlinear_error"},
      {"earlier_nonlinear_error_r2", "nonlinear_error_r2 from x_hat and every earlier-layer predictor together"},
      {"results", "headline numbers of the first SAE listed, also the job's result fields"},
  };
  return *defs;
}

absl::StatusOr<AnalysisReport> RunAnalyses(const AnalysisInputs& in, const AnalysisOptions& opt) {
  torch::NoGradGuard no_grad;
  if (!in.x.defined() || in.x.dim() != 2 || in.x.size(0) < 4) {
    return absl::InvalidArgumentError("activations: need a [n >= 4, d_model] matrix of rows");
  }
  if (in.saes.empty()) return absl::InvalidArgumentError("saes: at least one SAE is needed");
  const torch::Tensor& x = in.x;
  const int64_t n = x.size(0), d = x.size(1);
  for (const SaeHandle& s : in.saes) {
    if (s.d_in() != d) {
      return absl::InvalidArgumentError(
          absl::StrCat("saes: ", s.name, " has d_in ", s.d_in(), " but the activations have d_model ", d));
    }
  }
  auto log = [&](const std::string& line) {
    if (opt.log) opt.log(line);
  };
  const int64_t units = static_cast<int64_t>(in.saes.size()) * 3 + 4;
  int64_t done = 0;
  auto tick = [&]() -> absl::Status {
    ++done;
    return opt.progress ? opt.progress(std::min(done, units), units) : absl::OkStatus();
  };

  AnalysisReport report;
  json& j = report.json;
  const Split split = RandomSplit(n, opt.train_fraction, opt.seed);
  if (split.train.numel() < d || split.test.numel() < 2) {
    return absl::InvalidArgumentError(absl::StrCat("n_tokens: ", n, " rows with train_fraction ", opt.train_fraction,
                                                   " give ", split.train.numel(), " training rows for d_model ", d,
                                                   " (need >= d_model) and ", split.test.numel(),
                                                   " test rows (need >= 2)"));
  }
  j["definitions"] = Definitions();
  j["tokens"] = n;
  j["train_tokens"] = split.train.numel();
  j["test_tokens"] = split.test.numel();
  j["d_model"] = d;
  j["seed"] = opt.seed;

  // ---- 1: decomposition per SAE ----
  std::vector<PerSae> per;
  CsvTable& saes_csv = report.tables["saes.csv"];
  saes_csv.header = {"sae", "architecture", "d_sae", "fvu", "normalized_mse", "l0", "linear_error_r2",
                     "error_norm_r2", "xhat_norm_r2", "linear_norm_r2", "nonlinear_norm_r2", "linear_fvu",
                     "nonlinear_fvu", "linear_norm_share", "nonlinear_norm_share", "baseline_from_x",
                     "baseline_x_norm", "baseline_l0", "baseline_token_id_mean", "max_identity_error"};
  json saes_json = json::array();
  for (const SaeHandle& sae : in.saes) {
    PerSae p;
    p.sae = &sae;
    p.x_hat = sae.Reconstruct(x);
    p.l0 = sae.L0(x);
    p.dec = Decompose(x, p.x_hat, split);
    p.stats = DecompositionStatistics(x, p.x_hat, p.l0, p.dec, split);
    const NormBaselines b = ErrorNormBaselines(x, p.dec.error, p.l0, in.token_ids, split);
    const DecompositionStats& s = p.stats;
    log(absl::StrFormat("%s: fvu %.4f l0 %.1f linear_error_r2 %.3f error_norm_r2 %.3f", sae.name, s.fvu, s.l0,
                        s.linear_error_r2, s.error_norm_r2));
    json e = {{"sae", sae.name},
              {"architecture", sae.architecture()},
              {"d_sae", sae.d_sae()},
              {"fvu", Num(s.fvu)},
              {"normalized_mse", Num(s.normalized_mse)},
              {"l0", Num(s.l0)},
              {"linear_error_r2", Num(s.linear_error_r2)},
              {"error_norm_r2", Num(s.error_norm_r2)},
              {"xhat_norm_r2", Num(s.xhat_norm_r2)},
              {"linear_norm_r2", Num(s.linear_norm_r2)},
              {"nonlinear_norm_r2", Num(s.nonlinear_norm_r2)},
              {"linear_fvu", Num(s.linear_fvu)},
              {"nonlinear_fvu", Num(s.nonlinear_fvu)},
              {"linear_norm_share", Num(s.linear_norm_share)},
              {"nonlinear_norm_share", Num(s.nonlinear_norm_share)},
              {"max_identity_error", Num(s.max_identity_error)},
              {"error_norm_baselines",
               {{"baseline_from_x", Num(b.from_x)},
                {"baseline_x_norm", Num(b.from_x_norm)},
                {"baseline_l0", Num(b.from_l0)},
                {"baseline_token_id_mean", Num(b.token_id_mean)},
                {"token_ids_seen", Num(b.token_ids_seen)}}}};
    if (sae.model.k > 0) e["k"] = sae.model.k;
    saes_json.push_back(e);
    saes_csv.rows.push_back({sae.name, sae.architecture(), absl::StrCat(sae.d_sae()), Cell(s.fvu),
                             Cell(s.normalized_mse), Cell(s.l0), Cell(s.linear_error_r2), Cell(s.error_norm_r2),
                             Cell(s.xhat_norm_r2), Cell(s.linear_norm_r2), Cell(s.nonlinear_norm_r2),
                             Cell(s.linear_fvu), Cell(s.nonlinear_fvu), Cell(s.linear_norm_share),
                             Cell(s.nonlinear_norm_share), Cell(b.from_x), Cell(b.from_x_norm), Cell(b.from_l0),
                             Cell(b.token_id_mean), Cell(s.max_identity_error)});
    per.push_back(std::move(p));
    if (absl::Status st = tick(); !st.ok()) return st;
  }
  j["saes"] = saes_json;
  report.results["fvu"] = per[0].stats.fvu;
  report.results["l0"] = per[0].stats.l0;
  report.results["linear_error_r2"] = per[0].stats.linear_error_r2;
  report.results["error_norm_r2"] = per[0].stats.error_norm_r2;
  report.results["nonlinear_fvu"] = per[0].stats.nonlinear_fvu;

  // ---- 2: per-token scaling across widths ----
  std::vector<size_t> by_width(per.size());
  std::iota(by_width.begin(), by_width.end(), 0);
  std::stable_sort(by_width.begin(), by_width.end(),
                   [&](size_t a, size_t b) { return per[a].sae->d_sae() < per[b].sae->d_sae(); });
  {
    CsvTable& t = report.tables["per_token_scaling.csv"];
    t.header = {"narrow_sae", "narrow_d_sae", "wide_sae", "wide_d_sae", "per_token_r2", "per_token_r2_with_nonlinear",
                "extra_variance_explained_pct"};
    json arr = json::array();
    for (size_t a = 0; a < by_width.size(); ++a) {
      for (size_t b = a + 1; b < by_width.size(); ++b) {
        const PerSae& lo = per[by_width[a]];
        const PerSae& hi = per[by_width[b]];
        const PairScaling s = PredictWiderErrorNorm(SquaredNorms(lo.dec.error).sqrt(),
                                                    SquaredNorms(lo.dec.nonlinear).sqrt(),
                                                    SquaredNorms(hi.dec.error).sqrt(), split);
        arr.push_back({{"narrow_sae", lo.sae->name},
                       {"wide_sae", hi.sae->name},
                       {"per_token_r2", Num(s.r2)},
                       {"per_token_r2_with_nonlinear", Num(s.r2_with_nonlinear)},
                       {"extra_variance_explained_pct", Num(s.extra_variance_explained_pct)}});
        t.rows.push_back({lo.sae->name, absl::StrCat(lo.sae->d_sae()), hi.sae->name, absl::StrCat(hi.sae->d_sae()),
                          Cell(s.r2), Cell(s.r2_with_nonlinear), Cell(s.extra_variance_explained_pct)});
      }
    }
    j["per_token_scaling"] = arr;
    if (arr.empty()) j["per_token_scaling_note"] = "needs at least two SAEs";
    if (absl::Status st = tick(); !st.ok()) return st;
  }

  // ---- 3: power law and FVU split ----
  {
    std::vector<double> widths, fvus, nonlin;
    for (size_t i : by_width) {
      widths.push_back(static_cast<double>(per[i].sae->d_sae()));
      fvus.push_back(per[i].stats.fvu);
      nonlin.push_back(per[i].stats.nonlinear_fvu);
    }
    const PowerLawFit fit = FitPowerLaw(widths, fvus);
    json pl = {{"ok", fit.ok}};
    if (fit.ok) {
      pl["c"] = Num(fit.c), pl["a"] = Num(fit.a), pl["m"] = Num(fit.m), pl["sse"] = Num(fit.sse);
      if (std::set<double>(widths.begin(), widths.end()).size() == 3) {
        pl["note"] = "three widths: the curve interpolates them (no residual degrees of freedom)";
      }
    } else {
      pl["note"] = "needs SAEs of at least three distinct widths whose FVU decreases with width; the split "
                   "below then uses c = NaN";
    }
    CsvTable& t = report.tables["fvu_split.csv"];
    t.header = {"sae", "d_sae", "fvu", "fitted_fvu", "absent_features", "linear_error_region",
                "nonlinear_error_region", "linear_fvu", "nonlinear_fvu"};
    PowerLawFit used = fit;
    if (!fit.ok) used.c = std::numeric_limits<double>::quiet_NaN(), used.a = used.c;
    const std::vector<FvuSplit> parts = SplitFvu(used, widths, fvus, nonlin);
    json arr = json::array();
    for (size_t q = 0; q < parts.size(); ++q) {
      const PerSae& p = per[by_width[q]];
      const FvuSplit& s = parts[q];
      arr.push_back({{"sae", p.sae->name},
                     {"d_sae", p.sae->d_sae()},
                     {"fvu", Num(s.fvu)},
                     {"fitted_fvu", Num(s.fitted_fvu)},
                     {"absent_features", Num(s.absent_features)},
                     {"linear_error_region", Num(s.linear_error)},
                     {"nonlinear_error_region", Num(s.nonlinear_error)},
                     {"linear_fvu", Num(p.stats.linear_fvu)},
                     {"nonlinear_fvu", Num(p.stats.nonlinear_fvu)}});
      t.rows.push_back({p.sae->name, absl::StrCat(p.sae->d_sae()), Cell(s.fvu), Cell(s.fitted_fvu),
                        Cell(s.absent_features), Cell(s.linear_error), Cell(s.nonlinear_error),
                        Cell(p.stats.linear_fvu), Cell(p.stats.nonlinear_fvu)});
    }
    pl["split"] = arr;
    j["power_law"] = pl;
    if (absl::Status st = tick(); !st.ok()) return st;
  }

  // ---- 4: SAEs trained on the error parts of the first SAE ----
  if (opt.train_error_saes) {
    const PerSae& p = per[0];
    ErrorSaeOptions eo = opt.error_sae;
    if (eo.d_sae <= 0) eo.d_sae = p.sae->d_sae();
    if (eo.k <= 0) eo.k = std::max<int64_t>(1, std::llround(p.stats.l0));
    eo.k = std::min(eo.k, eo.d_sae);
    eo.seed = opt.seed;
    json block = {{"sae", p.sae->name}, {"d_sae", eo.d_sae}, {"k", eo.k},         {"steps", eo.steps},
                  {"batch_size", eo.batch_size}, {"lr", eo.lr},           {"targets", json::object()}};
    CsvTable& t = report.tables["error_saes.csv"];
    t.header = {"target", "d_sae", "k", "steps", "error_sae_fvu", "error_sae_l0", "error_sae_dead_fraction",
                "final_train_fvu"};
    const std::vector<std::pair<std::string, const torch::Tensor*>> targets = {
        {"error", &p.dec.error}, {"linear_error", &p.dec.linear}, {"nonlinear_error", &p.dec.nonlinear}};
    for (const auto& [name, target] : targets) {
      ErrorSaeOptions o = eo;
      if (opt.progress) o.progress = [&](int64_t, int64_t) { return opt.progress(done, units); };
      absl::StatusOr<ErrorSaeResult> r = TrainErrorSae(Rows(*target, split.train), Rows(*target, split.test), o);
      if (!r.ok()) return r.status();
      log(absl::StrFormat("error SAE on %s: fvu %.4f l0 %.1f", name, r->fvu, r->l0));
      block["targets"][name] = {{"error_sae_fvu", Num(r->fvu)},
                                {"error_sae_l0", Num(r->l0)},
                                {"error_sae_dead_fraction", Num(r->dead_fraction)},
                                {"final_train_fvu", Num(r->final_train_fvu)}};
      t.rows.push_back({name, absl::StrCat(eo.d_sae), absl::StrCat(eo.k), absl::StrCat(eo.steps), Cell(r->fvu),
                        Cell(r->l0), Cell(r->dead_fraction), Cell(r->final_train_fvu)});
      report.results[absl::StrCat(name, "_sae_fvu")] = r->fvu;
    }
    j["error_saes"] = block;
  }
  if (absl::Status st = tick(); !st.ok()) return st;

  // ---- 5: CE splice ----
  if (in.splice.has_value()) {
    const SpliceInputs& sp = *in.splice;
    CsvTable& t = report.tables["ce_splice.csv"];
    t.header = {"sae", "ce_clean", "ce_x", "ce_sae", "ce_sae_plus_linear", "ce_sae_plus_nonlinear", "ce_zero",
                "linear_ce_recovered_pct", "nonlinear_ce_recovered_pct", "linear_r2_pct", "linear_norm_pct",
                "nonlinear_norm_pct", "tokens"};
    json arr = json::array();
    for (const PerSae& p : per) {
      const SaeHandle sae = p.sae->To(x.device());
      const torch::Tensor W = p.dec.W;
      std::vector<lm::SpliceFn> fns = {
          [](const torch::Tensor& r) { return r; },
          [&sae](const torch::Tensor& r) { return sae.Reconstruct(r); },
          [&sae, W](const torch::Tensor& r) { return sae.Reconstruct(r) + r.matmul(W.to(r.device())); },
          [W](const torch::Tensor& r) { return r - r.matmul(W.to(r.device())); },
          [](const torch::Tensor& r) { return torch::zeros_like(r); },
      };
      lm::SpliceOptions so;
      so.skip_positions = sp.skip_positions;
      absl::StatusOr<lm::SpliceResult> res = lm::EvaluateSplices(*sp.model, sp.sequences, sp.hook, fns, so);
      if (!res.ok()) return res.status();
      const double clean = res->ce_clean, cx = res->ce_spliced[0], cs = res->ce_spliced[1],
                   cl = res->ce_spliced[2], cn = res->ce_spliced[3], cz = res->ce_spliced[4];
      const double gap = cs - clean;
      const double lin_pct = (cs - cl) / gap * 100, nonlin_pct = (cs - cn) / gap * 100;
      arr.push_back({{"sae", sae.name},
                     {"ce_clean", Num(clean)},
                     {"ce_x", Num(cx)},
                     {"ce_sae", Num(cs)},
                     {"ce_sae_plus_linear", Num(cl)},
                     {"ce_sae_plus_nonlinear", Num(cn)},
                     {"ce_zero", Num(cz)},
                     {"linear_ce_recovered_pct", Num(lin_pct)},
                     {"nonlinear_ce_recovered_pct", Num(nonlin_pct)},
                     {"linear_r2_pct", Num(p.stats.linear_error_r2 * 100)},
                     {"linear_norm_pct", Num(p.stats.linear_norm_share * 100)},
                     {"nonlinear_norm_pct", Num(p.stats.nonlinear_norm_share * 100)},
                     {"tokens", res->tokens}});
      t.rows.push_back({sae.name, Cell(clean), Cell(cx), Cell(cs), Cell(cl), Cell(cn), Cell(cz), Cell(lin_pct),
                        Cell(nonlin_pct), Cell(p.stats.linear_error_r2 * 100),
                        Cell(p.stats.linear_norm_share * 100), Cell(p.stats.nonlinear_norm_share * 100),
                        absl::StrCat(res->tokens)});
      if (&p == &per[0]) {
        report.results["ce_clean"] = clean;
        report.results["ce_sae"] = cs;
        report.results["linear_ce_recovered_pct"] = lin_pct;
        report.results["nonlinear_ce_recovered_pct"] = nonlin_pct;
      }
      log(absl::StrFormat("CE splice %s: clean %.4f x %.4f sae %.4f +lin %.4f +nonlin %.4f", sae.name, clean, cx,
                          cs, cl, cn));
      if (absl::Status st = tick(); !st.ok()) return st;
    }
    j["ce_splice"] = arr;
    j["ce_splice_sequences"] = sp.sequences.size(0);
  } else {
    j["ce_splice_note"] = in.splice_note.empty() ? "needs a model source" : in.splice_note;
  }

  // ---- 6: gradient pursuit ----
  if (opt.pursuit_tokens > 0) {
    const int64_t m = std::min(opt.pursuit_tokens, n);
    // The first m rows of one more permutation, split like the whole set.
    const Split pick = RandomSplit(n, 1.0, opt.seed + 1);
    torch::Tensor sub = pick.train.slice(0, 0, m);
    const Split inner = RandomSplit(m, opt.train_fraction, opt.seed + 2);
    torch::Tensor xs = Rows(x, sub);
    CsvTable& t = report.tables["pursuit.csv"];
    t.header = {"sae", "tokens", "l0", "fvu", "pursuit_fvu", "refined_fvu", "nonlinear_fvu",
                "pursuit_nonlinear_fvu", "refined_nonlinear_fvu", "nonlinear_fvu_change", "linear_error_r2",
                "pursuit_linear_error_r2"};
    json arr = json::array();
    const bool fits = inner.train.numel() >= d && inner.test.numel() >= 2;
    for (const PerSae& p : per) {
      const SaeHandle& sae = *p.sae;
      torch::Tensor codes = sae.Encode(xs);
      torch::Tensor l0 = (codes > 0).sum(1);
      torch::Tensor enc_hat = sae.Decode(codes, xs);
      // Pursuit fits codes against the decoder in the SAE's input space.
      const torch::Tensor target = sae.InputSpace(xs);
      torch::Tensor gp_hat = sae.Decode(GradientPursuit(target, sae.W_dec(), sae.b_dec(), l0), xs);
      torch::Tensor ref_hat = sae.Decode(RefineOnSupport(target, sae.W_dec(), sae.b_dec(), codes, 20), xs);
      auto fvu_of = [&](const torch::Tensor& h) { return Fvu(Rows(xs, inner.test), Rows(h, inner.test)); };
      double nl_enc = NAN, nl_gp = NAN, nl_ref = NAN, r2_enc = NAN, r2_gp = NAN;
      if (fits) {
        auto stats_of = [&](const torch::Tensor& h) {
          return DecompositionStatistics(xs, h, l0.to(torch::kFloat32), Decompose(xs, h, inner), inner);
        };
        const DecompositionStats se = stats_of(enc_hat), sg = stats_of(gp_hat), sr = stats_of(ref_hat);
        nl_enc = se.nonlinear_fvu, nl_gp = sg.nonlinear_fvu, nl_ref = sr.nonlinear_fvu;
        r2_enc = se.linear_error_r2, r2_gp = sg.linear_error_r2;
      }
      const double f = fvu_of(enc_hat), fg = fvu_of(gp_hat), fr = fvu_of(ref_hat);
      const double l0m = l0.to(torch::kFloat64).mean().item<double>();
      arr.push_back({{"sae", sae.name},
                     {"tokens", m},
                     {"l0", Num(l0m)},
                     {"fvu", Num(f)},
                     {"pursuit_fvu", Num(fg)},
                     {"refined_fvu", Num(fr)},
                     {"nonlinear_fvu", Num(nl_enc)},
                     {"pursuit_nonlinear_fvu", Num(nl_gp)},
                     {"refined_nonlinear_fvu", Num(nl_ref)},
                     {"nonlinear_fvu_change", Num(nl_gp - nl_enc)},
                     {"linear_error_r2", Num(r2_enc)},
                     {"pursuit_linear_error_r2", Num(r2_gp)}});
      t.rows.push_back({sae.name, absl::StrCat(m), Cell(l0m), Cell(f), Cell(fg), Cell(fr), Cell(nl_enc), Cell(nl_gp),
                        Cell(nl_ref), Cell(nl_gp - nl_enc), Cell(r2_enc), Cell(r2_gp)});
      log(absl::StrFormat("pursuit %s: fvu %.4f -> pursuit %.4f, refined %.4f; nonlinear %.4f -> %.4f", sae.name, f,
                          fg, fr, nl_enc, nl_gp));
      if (&p == &per[0]) report.results["pursuit_fvu"] = fg;
      if (absl::Status st = tick(); !st.ok()) return st;
    }
    j["gradient_pursuit"] = arr;
    if (!fits) j["gradient_pursuit_note"] = "too few pursuit_tokens to fit W_star on their training part";
  }

  // ---- 7: earlier-layer prediction ----
  if (!in.earlier.empty()) {
    const PerSae& p = per[0];
    std::vector<std::pair<std::string, torch::Tensor>> preds = {{"x", x}, {"x_hat", p.x_hat}};
    for (const auto& e : in.earlier) preds.push_back(e);
    std::vector<torch::Tensor> all = {p.x_hat};
    for (const auto& e : in.earlier) all.push_back(e.second);
    // Raw activations of all three sum to x itself (resid_post = resid_pre +
    // attn_out + mlp_out), so with x̂ they span every error part and the
    // combined R² would be 1 by construction, not a finding. The paper's
    // combined predictor uses SAE reconstructions of them.
    bool all_raw = true;
    for (const auto& e : in.earlier) all_raw = all_raw && absl::EndsWith(e.first, "_raw");
    std::string combined_note;
    if (all_raw && in.earlier.size() == 3) {
      combined_note =
          "no combined predictor: the raw previous residual, attention and MLP outputs sum to x itself, so with "
          "x_hat they predict every error part exactly; give prev_resid_sae, attn_sae and mlp_sae for the paper's "
          "combined predictor";
    } else {
      preds.push_back({"x_hat+all_earlier", torch::cat(all, 1)});
    }
    CsvTable& t = report.tables["earlier_layers.csv"];
    t.header = {"predictor", "width", "error_r2", "linear_error_r2", "nonlinear_error_r2"};
    json arr = json::array();
    for (const auto& [name, X] : preds) {
      if (X.size(0) != n) return absl::InternalError(absl::StrCat("earlier predictor ", name, " is not row-aligned"));
      const double re = FitHeldOut(X, p.dec.error, split).r2;
      const double rl = FitHeldOut(X, p.dec.linear, split).r2;
      const double rn = FitHeldOut(X, p.dec.nonlinear, split).r2;
      arr.push_back({{"predictor", name},
                     {"width", X.size(1)},
                     {"error_r2", Num(re)},
                     {"linear_error_r2", Num(rl)},
                     {"nonlinear_error_r2", Num(rn)}});
      t.rows.push_back({name, absl::StrCat(X.size(1)), Cell(re), Cell(rl), Cell(rn)});
      if (name == "x_hat+all_earlier") report.results["earlier_nonlinear_error_r2"] = rn;
    }
    j["earlier_layers"] = {{"sae", p.sae->name}, {"predictors", arr}, {"note", in.earlier_note}};
    if (!combined_note.empty()) j["earlier_layers"]["combined_note"] = combined_note;
  } else {
    j["earlier_layers_note"] = in.earlier_note.empty() ? "needs a model source" : in.earlier_note;
  }
  if (absl::Status st = tick(); !st.ok()) return st;
  j["results"] = json::object();
  for (const auto& [k, v] : report.results) j["results"][k] = Num(v);
  return report;
}

}  // namespace loupe::dark_matter
