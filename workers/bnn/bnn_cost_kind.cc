#include "workers/bnn/bnn_cost_kind.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "loupe/v1/kinds.pb.h"
#include "workers/bnn/cost_table.h"
#include "workers/bnn/network_plan.h"
#include "workers/runtime/param_builders.h"
#include "workers/runtime/params.h"

namespace loupe {
namespace {

using loupe::v1::BnnCostParams;

constexpr char kName[] = "bnn.cost";

class BnnCostKind : public TypedJobKind<BnnCostParams> {
 public:
  std::string name() const override { return kName; }
  std::string description() const override {
    return "ACE (arithmetic computation effort: MACs × weight bits × activation bits, PokeBNN's cost "
           "metric) and CPU64 (1-bit MACs / 64 + other MACs) of a binary network, per layer type "
           "(stem, binary_conv, se_conv, dense) and in total, without training it. PokeBNN 1.0× at "
           "224² gives conv ACE 4,091,469,824. Writes the per-layer table as cost.json.";
  }
  std::vector<ParamSpec> params() const override {
    ParamSpec arch;
    arch.name = "architecture";
    arch.help =
        "pokebnn (ResNet-50 stage plan), pokebnn_small (28×28), reactnet_small, or float / "
        "float_small (the same shapes in float32)";
    arch.default_value = "pokebnn";
    arch.choices = bnn::Architectures();
    return {arch,
            NumberParam("width", "Channel multiplier of the stages (the paper's 0.5×, 0.75×, 1.0×, 2.0×)", "1.0",
                   0.001, 64),
            NumberParam("input_size", "Side of the square input image in pixels", "224", 8, 4096),
            NumberParam("input_channels", "Channels of the input image", "3", 1, 64),
            NumberParam("num_classes", "Outputs of the dense classifier", "1000", 2, 100000)};
  }
  std::vector<std::string> result_fields() const override {
    return {"total_ace", "conv_ace", "dense_ace", "stem_ace", "binary_conv_ace", "se_conv_ace",
            "float_conv_ace", "cpu64", "binary_macs", "other_macs", "parameters"};
  }
  std::vector<std::string> artifact_names() const override { return {"cost.json"}; }

 protected:
  absl::Status ValidateParams(const BnnCostParams& p) const override {
    return PlanFor(p).status();
  }

  absl::Status RunJob(const BnnCostParams& given, JobContext& ctx) const override {
    BnnCostParams p = given;
    if (absl::Status s = ApplyDefaultsAndValidate(*this, &p); !s.ok()) return s;
    absl::StatusOr<bnn::NetworkPlan> plan = PlanFor(p);
    if (!plan.ok()) return plan.status();
    const bnn::CostReport cost = bnn::ComputeCost(*plan);
    ctx.SetResult("total_ace", static_cast<double>(cost.total_ace));
    ctx.SetResult("conv_ace", static_cast<double>(cost.conv_ace));
    ctx.SetResult("dense_ace", static_cast<double>(cost.dense_ace));
    for (const char* type : {"stem", "binary_conv", "se_conv", "float_conv"}) {
      auto it = cost.ace_by_type.find(type);
      ctx.SetResult(absl::StrCat(type, "_ace"), it == cost.ace_by_type.end() ? 0.0 : static_cast<double>(it->second));
    }
    ctx.SetResult("cpu64", cost.cpu64);
    ctx.SetResult("binary_macs", static_cast<double>(cost.binary_macs));
    ctx.SetResult("other_macs", static_cast<double>(cost.other_macs));
    ctx.SetResult("parameters", static_cast<double>(cost.parameters));
    ctx.Log(absl::StrFormat("bnn.cost: %s width %g at %d²: total ACE %d (conv %d, dense %d), CPU64 %.6g",
                            p.architecture(), p.width(), p.input_size(), cost.total_ace, cost.conv_ace,
                            cost.dense_ace, cost.cpu64));
    return ctx.WriteArtifact("cost.json", bnn::CostJson(*plan, cost), "application/json");
  }

 private:
  static absl::StatusOr<bnn::NetworkPlan> PlanFor(const BnnCostParams& p) {
    bnn::PlanOptions o;
    o.architecture = p.architecture();
    o.width = p.width();
    o.input_size = p.input_size();
    o.input_channels = p.input_channels();
    o.num_classes = p.num_classes();
    absl::StatusOr<bnn::NetworkPlan> plan = bnn::MakePlan(o);
    if (!plan.ok()) return absl::InvalidArgumentError(absl::StrCat(kName, " ", plan.status().message()));
    return plan;
  }
};

}  // namespace

std::unique_ptr<JobKind> MakeBnnCostKind() { return std::make_unique<BnnCostKind>(); }

}  // namespace loupe
