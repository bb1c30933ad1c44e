#include "workers/bnn/cost_table.h"

#include <nlohmann/json.hpp>

namespace loupe::bnn {

std::string CostJson(const NetworkPlan& plan, const CostReport& cost) {
  nlohmann::json layers = nlohmann::json::array();
  for (const ConvPlan* c : plan.Layers()) {
    layers.push_back({{"name", c->name},
                      {"type", LayerTypeName(c->type)},
                      {"in_channels", c->in_channels},
                      {"out_channels", c->out_channels},
                      {"kernel", c->kernel},
                      {"stride", c->stride},
                      {"groups", c->groups},
                      {"input_hw", {c->in_h, c->in_w}},
                      {"output_hw", {c->out_h, c->out_w}},
                      {"w_bits", c->w_bits},
                      {"a_bits", c->a_bits},
                      {"macs", c->Macs()},
                      {"ace", c->Ace()}});
  }
  nlohmann::json j = {{"architecture", plan.architecture},
                      {"input_size", plan.input_size},
                      {"input_channels", plan.input_channels},
                      {"num_classes", plan.num_classes},
                      {"ace_by_type", cost.ace_by_type},
                      {"conv_ace", cost.conv_ace},
                      {"dense_ace", cost.dense_ace},
                      {"total_ace", cost.total_ace},
                      {"cpu64", cost.cpu64},
                      {"binary_macs", cost.binary_macs},
                      {"other_macs", cost.other_macs},
                      {"parameters", cost.parameters},
                      {"layers", layers}};
  return j.dump(2);
}

}  // namespace loupe::bnn
