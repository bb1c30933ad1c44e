#include "workers/lm/model/hooks.h"

#include <charconv>

#include "absl/strings/str_cat.h"

namespace loupe::lm {
namespace {

constexpr std::pair<HookPoint::Site, const char*> kSites[] = {
    {HookPoint::kResidPre, "resid_pre"}, {HookPoint::kAttnOut, "attn_out"},
    {HookPoint::kResidMid, "resid_mid"}, {HookPoint::kMlpOut, "mlp_out"},
    {HookPoint::kResidPost, "resid_post"},
};

absl::Status BadName(absl::string_view name, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(
      "bad hook point '", name, "': ", why,
      " (expected blocks.<layer>.hook_<site>, site one of resid_pre, attn_out, resid_mid, mlp_out, resid_post)"));
}

}  // namespace

std::string HookPoint::Name() const {
  for (const auto& [s, n] : kSites) {
    if (s == site) return absl::StrCat("blocks.", layer, ".hook_", n);
  }
  return absl::StrCat("blocks.", layer, ".hook_?");
}

absl::StatusOr<HookPoint> HookPoint::Parse(absl::string_view name) {
  constexpr absl::string_view kBlocks = "blocks.";
  if (name.substr(0, kBlocks.size()) != kBlocks) return BadName(name, "it does not start with 'blocks.'");
  absl::string_view rest = name.substr(kBlocks.size());
  const size_t dot = rest.find('.');
  if (dot == absl::string_view::npos) return BadName(name, "no '.hook_<site>' after the layer");
  absl::string_view layer_text = rest.substr(0, dot);
  int layer = -1;
  auto [end, ec] = std::from_chars(layer_text.data(), layer_text.data() + layer_text.size(), layer);
  if (layer_text.empty() || ec != std::errc() || end != layer_text.data() + layer_text.size() || layer < 0) {
    return BadName(name, absl::StrCat("layer '", layer_text, "' is not a non-negative integer"));
  }
  absl::string_view hook = rest.substr(dot + 1);
  constexpr absl::string_view kHook = "hook_";
  if (hook.substr(0, kHook.size()) != kHook) return BadName(name, "the part after the layer must start with 'hook_'");
  absl::string_view site = hook.substr(kHook.size());
  for (const auto& [s, n] : kSites) {
    if (site == n) return HookPoint{s, layer};
  }
  return BadName(name, absl::StrCat("unknown site '", site, "'"));
}

void Hooks::Add(HookPoint point, HookFn fn, torch::Tensor position_mask) {
  hooks_[point].push_back(Entry{std::move(fn), std::move(position_mask)});
}

absl::Status Hooks::Add(absl::string_view name, HookFn fn, torch::Tensor position_mask) {
  absl::StatusOr<HookPoint> p = HookPoint::Parse(name);
  if (!p.ok()) return p.status();
  Add(*p, std::move(fn), std::move(position_mask));
  return absl::OkStatus();
}

void Hooks::Capture(HookPoint point, torch::Tensor* out, torch::Tensor position_mask) {
  Add(
      point,
      [out](const torch::Tensor& act) {
        *out = act;
        return act;
      },
      std::move(position_mask));
}

int Hooks::MaxLayer() const { return hooks_.empty() ? -1 : hooks_.rbegin()->first.layer; }

absl::Status Hooks::Validate(int64_t n_layers) const {
  for (const auto& [point, entries] : hooks_) {
    if (point.layer >= n_layers) {
      return absl::InvalidArgumentError(
          absl::StrCat("hook point ", point.Name(), " is past the model's last block (it has ", n_layers, ")"));
    }
  }
  return absl::OkStatus();
}

torch::Tensor Hooks::Run(HookPoint point, torch::Tensor act) const {
  auto it = hooks_.find(point);
  if (it == hooks_.end()) return act;
  for (const Entry& e : it->second) {
    if (!e.mask.defined()) {
      torch::Tensor r = e.fn(act);
      TORCH_CHECK(r.defined() && r.sizes() == act.sizes(), "hook on ", point.Name(), " returned shape ",
                  r.defined() ? r.sizes() : c10::IntArrayRef{}, ", expected ", act.sizes());
      act = r.to(act.device(), act.scalar_type());
      continue;
    }
    const int64_t B = act.size(0), T = act.size(1);
    torch::Tensor mask = e.mask.to(act.device(), torch::kBool);
    TORCH_CHECK(mask.dim() == 1 ? mask.size(0) == T : (mask.dim() == 2 && mask.size(0) == B && mask.size(1) == T),
                "position mask for ", point.Name(), " has shape ", e.mask.sizes(), "; expected [", T, "] or [", B,
                ", ", T, "] (the positions of this forward call)");
    // A [T] mask selects along dim 1 of every row; a [B, T] mask selects
    // (row, position) pairs. index/index_put are differentiable, so a
    // replacement trains like any other op.
    using torch::indexing::Slice;
    std::vector<torch::indexing::TensorIndex> index;
    if (mask.dim() == 1) {
      index = {Slice(), mask};
    } else {
      index = {mask};
    }
    torch::Tensor selected = act.index(index);
    torch::Tensor r = e.fn(selected);
    TORCH_CHECK(r.defined() && r.sizes() == selected.sizes(), "hook on ", point.Name(), " returned shape ",
                r.defined() ? r.sizes() : c10::IntArrayRef{}, ", expected ", selected.sizes(),
                " (the masked positions)");
    if (r.is_same(selected)) continue;  // a reading hook: nothing to write back
    // index_put_ on a clone rather than on `act`: `act` may be a tensor the
    // caller or autograd still needs.
    act = act.clone();
    act.index_put_(index, r.to(act.device(), act.scalar_type()));
  }
  return act;
}

}  // namespace loupe::lm
