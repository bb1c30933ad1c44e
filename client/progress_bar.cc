#include "client/progress_bar.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/duration.h"
#include "client/output.h"

namespace loupe::cli {
namespace {

constexpr int kMinBar = 10;
constexpr int kMaxBar = 30;

}  // namespace

std::string RenderProgressBar(int64_t step, int64_t total,
                              const std::map<std::string, double>& metrics,
                              std::optional<absl::Duration> eta, int width) {
  const int limit = std::max(1, width - 1);  // never the last column
  std::string counts;
  if (total > 0) {
    counts = FormatProgressCell(step, total);
  } else {
    counts = absl::StrCat("step ", step);
  }
  const std::string eta_text = (eta && total > 0) ? absl::StrCat(" eta ", FormatDurationShort(*eta)) : "";
  // Headline metrics first: with little room, fvu and l0 beat auxk.
  static const std::vector<std::string> kHeadline = {"loss", "fvu", "l0", "mmcs", "bits_per_byte",
                                                     "accuracy"};
  std::vector<std::pair<size_t, std::string>> ranked;
  for (const auto& [k, v] : metrics) {
    size_t rank = std::find(kHeadline.begin(), kHeadline.end(), k) - kHeadline.begin();
    ranked.emplace_back(rank, absl::StrCat(" ", k, "=", FormatMetricValue(v)));
  }
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> metric_tokens;
  for (auto& [_, token] : ranked) metric_tokens.push_back(std::move(token));

  // The bar's width depends on the terminal only, so it does not jump as
  // metrics and the eta come and go; metrics yield to it instead.
  const int bar = total > 0 ? std::clamp(limit / 3, kMinBar, kMaxBar) : 0;
  std::string line;
  if (total > 0) {
    const int64_t clamped = std::clamp<int64_t>(step, 0, total);
    const int filled = static_cast<int>(clamped * bar / total);
    absl::StrAppend(&line, "[", std::string(filled, '#'), std::string(bar - filled, '-'), "] ");
  }
  absl::StrAppend(&line, counts);
  size_t room = static_cast<size_t>(limit) > line.size() + eta_text.size()
                    ? static_cast<size_t>(limit) - line.size() - eta_text.size()
                    : 0;
  for (const auto& m : metric_tokens) {
    if (m.size() > room) break;
    line += m;
    room -= m.size();
  }
  line += eta_text;
  if (static_cast<int>(line.size()) > limit) line.resize(limit);
  return line;
}

void EtaEstimator::Observe(absl::Time time, int64_t step, int attempt) {
  if (!started_ || attempt != attempt_ || step < last_step_) {
    started_ = true;
    attempt_ = attempt;
    t0_ = last_t_ = time;
    step0_ = last_step_ = step;
    return;
  }
  last_t_ = time;
  last_step_ = step;
}

std::optional<absl::Duration> EtaEstimator::Eta(int64_t total) const {
  if (!started_ || total <= 0 || last_step_ <= step0_ || last_t_ <= t0_) return std::nullopt;
  if (last_step_ >= total) return absl::ZeroDuration();
  const double per_step = absl::ToDoubleSeconds(last_t_ - t0_) / static_cast<double>(last_step_ - step0_);
  return absl::Seconds(per_step * static_cast<double>(total - last_step_));
}

}  // namespace loupe::cli
