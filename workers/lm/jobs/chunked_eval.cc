#include "workers/lm/jobs/chunked_eval.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"

namespace loupe::lm {

absl::StatusOr<TextEval> EvaluateTextInChunks(CausalLM& model, absl::Span<const int64_t> ids, int64_t n_bytes,
                                              const EvalOptions& options, int64_t windows_per_chunk,
                                              const EvalProgress& progress) {
  const int64_t n = static_cast<int64_t>(ids.size());
  if (options.window <= 0) return absl::InvalidArgumentError("EvaluateTextInChunks needs options.window > 0");
  if (windows_per_chunk < 1) return absl::InvalidArgumentError("EvaluateTextInChunks needs windows_per_chunk >= 1");
  // EvaluateText's layout (loss.cc): the window clipped as it clips it.
  const ModelConfig& c = model.config();
  int64_t w = options.window;
  if (c.architecture == Architecture::kGpt2) w = std::min(w, c.max_positions);
  if (c.sliding_window.has_value()) w = std::min(w, *c.sliding_window);
  w = std::min(w, n);
  const int64_t stride = options.stride > 0 ? options.stride : std::max<int64_t>(1, w / 2);
  std::vector<int64_t> ends = {w};
  while (ends.back() < n) ends.push_back(std::min(n, ends.back() + stride));
  const int64_t total = static_cast<int64_t>(ends.size());
  if (total == 1 || w < 2 || stride >= w) {
    // One window, or a layout EvaluateText refuses: let it decide.
    absl::StatusOr<TextEval> all = EvaluateText(model, ids, n_bytes, options);
    if (all.ok() && progress) {
      if (absl::Status s = progress(total, total); !s.ok()) return s;
    }
    return all;
  }

  EvalOptions sub = options;
  sub.window = w;
  sub.stride = stride;
  TextEval out;
  out.token_nats.reserve(static_cast<size_t>(n - 1));
  for (int64_t k = 0; k < total; k += windows_per_chunk) {
    const int64_t last = std::min(total, k + windows_per_chunk) - 1;
    const int64_t begin = ends[k] - w;
    absl::StatusOr<TextEval> part = EvaluateText(model, ids.subspan(begin, ends[last] - begin), n_bytes, sub);
    if (!part.ok()) return part.status();
    // part->token_nats[i] is the loss of target begin + 1 + i; window k
    // scores targets from window k-1's end (from 1 for the first).
    const int64_t from = k == 0 ? 1 : ends[k - 1];
    out.token_nats.insert(out.token_nats.end(), part->token_nats.begin() + (from - begin - 1),
                          part->token_nats.end());
    if (progress) {
      if (absl::Status s = progress(last + 1, total); !s.ok()) return s;
    }
  }
  // Summed in the same order as EvaluateText, so the totals match exactly.
  for (float v : out.token_nats) out.total_nats += v;
  out.n_tokens = static_cast<int64_t>(out.token_nats.size());
  out.n_bytes = n_bytes;
  out.bits_per_byte = BitsPerByte(out.total_nats, n_bytes);
  out.nats_per_token = out.total_nats / static_cast<double>(out.n_tokens);
  out.perplexity = std::exp(out.nats_per_token);
  return out;
}

}  // namespace loupe::lm
