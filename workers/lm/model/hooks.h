// Activation hooks: read or replace a model's internal activations during
// Forward, at chosen layers and positions.
//
// Hook points use TransformerLens's names, which SAE users know (SAELens
// records them as hook_name):
//   blocks.L.hook_resid_pre   residual stream entering block L   [B, T, d_model]
//   blocks.L.hook_attn_out    attention output of block L (after the output
//                             projection and its bias, before the residual add)
//   blocks.L.hook_resid_mid   residual stream between attention and MLP
//   blocks.L.hook_mlp_out     MLP output of block L (before the residual add)
//   blocks.L.hook_resid_post  residual stream leaving block L
// resid_post of L and resid_pre of L+1 carry the same values; hooks on both run
// in that order (post, then pre), each seeing the previous one's result.
//
// A hook is a function of the activation that returns its replacement (return
// the argument unchanged to only read it). Without a position mask it sees the
// whole [B, T, d_model] tensor. With a mask — bool [T] (the same positions in
// every row) or bool [B, T] — it sees only the selected positions: [B, N, d]
// for a [T] mask, [N, d] for a [B, T] mask (N = selected count), and what it
// returns is written back at those positions. Positions are those of the ids
// passed to this Forward call (with a KV cache: the new tokens only).
// Replacements must keep the shape; the dtype and device are converted to the
// activation's. Do not modify `act` in place (it may be a view autograd needs):
// return a new tensor. Replacements are differentiable, so hooks work in
// training too.
//
// A Hooks object is not modified by Forward; it may be shared by concurrent
// forwards if its callbacks are thread-safe.
#ifndef LOUPE_WORKERS_LM_MODEL_HOOKS_H_
#define LOUPE_WORKERS_LM_MODEL_HOOKS_H_

#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace loupe::lm {

struct HookPoint {
  enum Site { kResidPre, kAttnOut, kResidMid, kMlpOut, kResidPost };
  Site site = kResidPost;
  int layer = 0;

  // "blocks.3.hook_resid_post".
  std::string Name() const;
  // Inverse of Name(); INVALID_ARGUMENT with the accepted forms otherwise.
  static absl::StatusOr<HookPoint> Parse(absl::string_view name);

  bool operator<(const HookPoint& o) const {
    return layer != o.layer ? layer < o.layer : site < o.site;
  }
  bool operator==(const HookPoint& o) const { return layer == o.layer && site == o.site; }
};

using HookFn = std::function<torch::Tensor(const torch::Tensor& act)>;

class Hooks {
 public:
  // Several hooks on one point run in the order they were added.
  void Add(HookPoint point, HookFn fn, torch::Tensor position_mask = {});
  // By name ("blocks.0.hook_resid_post"); INVALID_ARGUMENT for a bad name.
  absl::Status Add(absl::string_view name, HookFn fn, torch::Tensor position_mask = {});

  // Reading hook: *out receives the activation (at the masked positions if
  // given), still attached to the autograd graph when grad mode is on.
  void Capture(HookPoint point, torch::Tensor* out, torch::Tensor position_mask = {});

  bool empty() const { return hooks_.empty(); }
  bool Has(HookPoint point) const { return hooks_.count(point) > 0; }
  // The deepest layer any hook refers to (-1 if none).
  int MaxLayer() const;
  // OK iff every hook's layer is in [0, n_layers).
  absl::Status Validate(int64_t n_layers) const;

  // Runs the hooks registered on `point` over `act` ([B, T, d]) and returns
  // the (possibly replaced) activation; `act` itself if there are none.
  // Throws c10::Error on a bad mask or a replacement of the wrong shape.
  torch::Tensor Run(HookPoint point, torch::Tensor act) const;

 private:
  struct Entry {
    HookFn fn;
    torch::Tensor mask;
  };
  std::map<HookPoint, std::vector<Entry>> hooks_;
};

}  // namespace loupe::lm

#endif  // LOUPE_WORKERS_LM_MODEL_HOOKS_H_
