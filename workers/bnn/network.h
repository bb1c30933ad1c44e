// BnnNetwork: the LibTorch network of a NetworkPlan — PokeInit stem
// (8-bit convs, BN, DPReLU), the plan's blocks of PokeConvs, global mean and
// an 8-bit dense classifier. With a float plan the same modules run
// unquantized. Not thread-safe; device-agnostic (move it with ->to()).
#ifndef LOUPE_WORKERS_BNN_NETWORK_H_
#define LOUPE_WORKERS_BNN_NETWORK_H_

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "workers/bnn/layers.h"
#include "workers/bnn/network_plan.h"

namespace loupe::bnn {

class BnnNetworkImpl : public torch::nn::Module {
 public:
  // `clip_bound`: B of every binary activation quantizer.
  BnnNetworkImpl(const NetworkPlan& plan, double clip_bound);
  // [N, C, H, W] images → [N, num_classes] logits.
  torch::Tensor forward(const torch::Tensor& x);

  // Packed inference for every binary conv (eval mode only); call again after
  // the weights change.
  void SetPacked(bool packed);
  const NetworkPlan& plan() const { return plan_; }
  double clip_bound() const { return clip_bound_; }
  // Parameters and buffers (BN statistics) by dotted name, for safetensors.
  std::map<std::string, torch::Tensor> StateDict() const;

 private:
  NetworkPlan plan_;
  double clip_bound_;
  QuantConv stem_conv{nullptr}, stem_grouped{nullptr}, dense{nullptr};
  torch::nn::BatchNorm2d stem_bn1{nullptr}, stem_bn2{nullptr};
  DPReLU stem_act1{nullptr}, stem_act2{nullptr};
  std::vector<std::vector<PokeConv>> blocks_;
};
TORCH_MODULE(BnnNetwork);

}  // namespace loupe::bnn

#endif  // LOUPE_WORKERS_BNN_NETWORK_H_
