#include "workers/bnn/network.h"

#include "absl/strings/str_cat.h"

namespace loupe::bnn {
namespace {

torch::nn::BatchNorm2d MakeBn(int64_t channels) {
  return torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(channels).momentum(0.1).eps(1e-5));
}

}  // namespace

BnnNetworkImpl::BnnNetworkImpl(const NetworkPlan& plan, double clip_bound) : plan_(plan), clip_bound_(clip_bound) {
  TORCH_CHECK(plan.stem.size() == 2, "BnnNetwork: the plan needs a two-conv stem");
  stem_conv = register_module("stem_conv", QuantConv(plan.stem[0], clip_bound, false, InputQuant::kSigned));
  stem_bn1 = register_module("stem_bn1", MakeBn(plan.stem[0].out_channels));
  stem_act1 = register_module("stem_act1", DPReLU(plan.stem[0].out_channels));
  stem_grouped = register_module("stem_grouped", QuantConv(plan.stem[1], clip_bound, false, InputQuant::kSigned));
  stem_bn2 = register_module("stem_bn2", MakeBn(plan.stem[1].out_channels));
  stem_act2 = register_module("stem_act2", DPReLU(plan.stem[1].out_channels));
  for (size_t b = 0; b < plan.blocks.size(); ++b) {
    std::vector<PokeConv> convs;
    for (size_t i = 0; i < plan.blocks[b].convs.size(); ++i) {
      convs.push_back(register_module(absl::StrCat("block", b, "_conv", i),
                                      PokeConv(plan.blocks[b].convs[i], clip_bound)));
    }
    blocks_.push_back(std::move(convs));
  }
  dense = register_module("dense", QuantConv(plan.dense, clip_bound, true, InputQuant::kSigned));
}

torch::Tensor BnnNetworkImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = stem_act1->forward(stem_bn1->forward(stem_conv->forward(x)));
  y = stem_act2->forward(stem_bn2->forward(stem_grouped->forward(y)));
  for (std::vector<PokeConv>& block : blocks_) {
    const torch::Tensor block_input = y;
    for (PokeConv& conv : block) y = conv->forward(y, block_input);
  }
  y = y.mean({2, 3}, /*keepdim=*/true);
  return dense->forward(y).flatten(1);
}

void BnnNetworkImpl::SetPacked(bool packed) {
  for (std::vector<PokeConv>& block : blocks_) {
    for (PokeConv& conv : block) conv->conv->SetPacked(packed);
  }
}

std::map<std::string, torch::Tensor> BnnNetworkImpl::StateDict() const {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : named_parameters()) out[p.key()] = p.value().detach();
  for (const auto& b : named_buffers()) out[b.key()] = b.value().detach();
  return out;
}

}  // namespace loupe::bnn
