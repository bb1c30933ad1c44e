#include "workers/lm/model/loss.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace loupe::lm {

torch::Tensor PerTokenLoss(const torch::Tensor& logits, const torch::Tensor& ids) {
  TORCH_CHECK(logits.dim() == 3 && ids.dim() == 2 && logits.size(0) == ids.size(0) && logits.size(1) == ids.size(1),
              "PerTokenLoss: logits ", logits.sizes(), " and ids ", ids.sizes(), " must be [B, T, V] and [B, T]");
  const int64_t T = ids.size(1);
  torch::Tensor pred = logits.narrow(1, 0, T - 1).to(torch::kFloat);                   // predicts ids[:, 1:]
  torch::Tensor target = ids.narrow(1, 1, T - 1).to(logits.device(), torch::kLong);  // [B, T-1]
  // log_softmax then gather: -log p(target), without materialising probabilities.
  return -torch::log_softmax(pred, -1).gather(-1, target.unsqueeze(-1)).squeeze(-1);
}

torch::Tensor NextTokenLoss(const torch::Tensor& logits, const torch::Tensor& ids) {
  return PerTokenLoss(logits, ids).mean();
}

double BitsPerByte(double total_nats, int64_t n_bytes) { return total_nats / std::log(2.0) / n_bytes; }

absl::StatusOr<TextEval> EvaluateText(CausalLM& model, absl::Span<const int64_t> ids, int64_t n_bytes,
                                      const EvalOptions& o) {
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n < 2) return absl::InvalidArgumentError("EvaluateText needs at least 2 token ids (context, then a target)");
  if (n_bytes <= 0) return absl::InvalidArgumentError("EvaluateText needs the text's byte count (> 0)");
  if (o.window < 0 || o.stride < 0 || o.batch_size < 1) {
    return absl::InvalidArgumentError("EvaluateText: window and stride must be >= 0, batch_size >= 1");
  }
  const ModelConfig& c = model.config();
  // The default window stays modest: logits for a window cost window x vocab
  // floats, and long-context Llama configs allow 100k+ positions.
  int64_t w = o.window > 0 ? o.window : std::min<int64_t>(c.max_positions, 2048);
  if (c.architecture == Architecture::kGpt2) w = std::min(w, c.max_positions);
  if (c.sliding_window.has_value()) w = std::min(w, *c.sliding_window);
  w = std::min(w, n);
  const int64_t stride = o.stride > 0 ? o.stride : std::max<int64_t>(1, w / 2);
  if (w < n && (w < 2 || stride >= w)) {
    return absl::InvalidArgumentError(absl::StrCat("EvaluateText: stride ", stride, " must be below window ", w,
                                                   " so that every window has context"));
  }

  torch::Tensor all = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()), torch::kLong);
  if (absl::Status s = model.CheckForward(all.narrow(0, 0, w).unsqueeze(0)); !s.ok()) return s;
  const int64_t lo = all.min().item<int64_t>(), hi = all.max().item<int64_t>();
  if (lo < 0 || hi >= c.vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("token id ", lo < 0 ? lo : hi, " is outside the vocabulary [0, ", c.vocab_size, ")"));
  }

  // Windows [end - w, end): the first ends at w, each next one `stride`
  // further (the last one clipped to n). Window i scores targets
  // [previous end, end), the first from 1.
  std::vector<int64_t> ends = {w};
  while (ends.back() < n) ends.push_back(std::min(n, ends.back() + stride));

  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;
  TextEval out;
  out.token_nats.reserve(n - 1);
  try {
    for (size_t first = 0; first < ends.size(); first += o.batch_size) {
      const size_t last = std::min(ends.size(), first + static_cast<size_t>(o.batch_size));
      std::vector<torch::Tensor> rows;
      for (size_t i = first; i < last; ++i) rows.push_back(all.narrow(0, ends[i] - w, w));
      torch::Tensor batch = torch::stack(rows);
      torch::Tensor nats = PerTokenLoss(model.Forward(batch), batch).to(torch::kCPU).contiguous();  // [k, w-1]
      for (size_t i = first; i < last; ++i) {
        const int64_t begin = ends[i] - w;
        const int64_t from = i == 0 ? 1 : ends[i - 1];
        // Target t sits at column t - begin - 1.
        const float* row = nats[i - first].data_ptr<float>();
        for (int64_t t = from; t < ends[i]; ++t) out.token_nats.push_back(row[t - begin - 1]);
      }
    }
  } catch (const c10::Error& e) {
    model.train(was_training);
    return absl::InternalError(absl::StrCat("EvaluateText: ", e.what_without_backtrace()));
  }
  model.train(was_training);

  for (float v : out.token_nats) out.total_nats += v;
  out.n_tokens = static_cast<int64_t>(out.token_nats.size());
  out.n_bytes = n_bytes;
  out.bits_per_byte = BitsPerByte(out.total_nats, n_bytes);
  out.nats_per_token = out.total_nats / static_cast<double>(out.n_tokens);
  out.perplexity = std::exp(out.nats_per_token);
  return out;
}

}  // namespace loupe::lm
