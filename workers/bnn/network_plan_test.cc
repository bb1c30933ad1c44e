#include "workers/bnn/network_plan.h"

#include <gtest/gtest.h>

namespace loupe::bnn {
namespace {

CostReport Cost(const std::string& arch, double width, int64_t size, int64_t in_ch = 3, int64_t classes = 1000) {
  PlanOptions o;
  o.architecture = arch;
  o.width = width;
  o.input_size = size;
  o.input_channels = in_ch;
  o.num_classes = classes;
  absl::StatusOr<NetworkPlan> plan = MakePlan(o);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return ComputeCost(*plan);
}

// The anchor's own golden value (aqt pokebnn_test.py, 1.0×, 224²).
TEST(NetworkPlanTest, PokeBnnAt224MatchesAnchorConvAce) {
  const CostReport c = Cost("pokebnn", 1.0, 224);
  EXPECT_EQ(c.conv_ace, 4091469824);
  EXPECT_EQ(c.dense_ace, 131072000);
  EXPECT_EQ(c.total_ace, 4091469824 + 131072000);
  // Per type, from testdata/ace_reference.py.
  EXPECT_EQ(c.ace_by_type.at("stem"), 423886848);
  EXPECT_EQ(c.ace_by_type.at("binary_conv"), 3609460736);
  EXPECT_EQ(c.ace_by_type.at("se_conv"), 58122240);
  EXPECT_EQ(c.ace_by_type.at("dense"), 131072000);
  EXPECT_EQ(c.binary_macs, 3609460736);
  EXPECT_DOUBLE_EQ(c.cpu64, 3609460736.0 / 64 + (423886848.0 / 64 + 58122240.0 / 16 + 131072000.0 / 64));
}

// Other widths and the 28×28 network against testdata/ace_reference.py.
TEST(NetworkPlanTest, WidthsAndSmallNetworkMatchReferenceWalk) {
  EXPECT_EQ(Cost("pokebnn", 0.5, 224).conv_ace, 1344002048);
  EXPECT_EQ(Cost("pokebnn", 0.75, 224).conv_ace, 2489315840);
  EXPECT_EQ(Cost("pokebnn", 2.0, 224).conv_ace, 15068487680);
  EXPECT_EQ(Cost("pokebnn", 2.0, 224).dense_ace, 262144000);
  const CostReport small = Cost("pokebnn_small", 1.0, 28, 1, 10);
  EXPECT_EQ(small.conv_ace, 8030208);
  EXPECT_EQ(small.dense_ace, 81920);
  EXPECT_EQ(small.ace_by_type.at("binary_conv"), 3512320);
}

TEST(NetworkPlanTest, ShapesFollowTheStagePlan) {
  PlanOptions o;
  absl::StatusOr<NetworkPlan> plan = MakePlan(o);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->blocks.size(), 16u);
  EXPECT_EQ(plan->stem[1].out_h, 56);
  EXPECT_EQ(plan->stem[1].out_channels, 64);
  const ConvPlan& last = plan->blocks.back().convs.back().conv;
  EXPECT_EQ(last.out_h, 7);
  EXPECT_EQ(last.out_channels, 2048);
  EXPECT_TRUE(plan->blocks[0].convs[2].zero_init_bn);
  EXPECT_TRUE(plan->blocks[0].convs[2].block_residual);
  EXPECT_FALSE(plan->blocks[0].convs[1].block_residual);
  // The stride-2 conv of each later stage is the 3×3.
  EXPECT_EQ(plan->blocks[3].convs[1].conv.stride, 2);
  EXPECT_EQ(plan->blocks[3].convs[0].conv.stride, 1);
}

TEST(NetworkPlanTest, FloatNetworkHasTheSameShapesAt32Bits) {
  PlanOptions o;
  o.architecture = "float_small";
  o.input_size = 28;
  o.input_channels = 1;
  o.num_classes = 10;
  absl::StatusOr<NetworkPlan> f = MakePlan(o);
  o.architecture = "pokebnn_small";
  absl::StatusOr<NetworkPlan> b = MakePlan(o);
  ASSERT_TRUE(f.ok() && b.ok());
  ASSERT_EQ(f->Layers().size(), b->Layers().size());
  for (size_t i = 0; i < f->Layers().size(); ++i) {
    EXPECT_EQ(f->Layers()[i]->Macs(), b->Layers()[i]->Macs());
    EXPECT_EQ(f->Layers()[i]->w_bits, 32);
  }
  EXPECT_EQ(ComputeCost(*f).binary_macs, 0);
}

TEST(NetworkPlanTest, ReactNetSmallHasNoSeAndLearnableShifts) {
  PlanOptions o;
  o.architecture = "reactnet_small";
  o.input_size = 28;
  o.input_channels = 1;
  o.num_classes = 10;
  absl::StatusOr<NetworkPlan> p = MakePlan(o);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->blocks.size(), 4u);
  for (const BlockPlan& b : p->blocks)
    for (const PokeConvPlan& c : b.convs) {
      EXPECT_FALSE(c.has_se);
      EXPECT_TRUE(c.learnable_shift);
    }
  EXPECT_EQ(p->blocks.back().convs.back().conv.out_channels, 128);
  EXPECT_EQ(ComputeCost(*p).ace_by_type.count("se_conv"), 0u);
}

TEST(NetworkPlanTest, RejectsBadOptionsNamingTheField) {
  PlanOptions o;
  o.architecture = "resnet";
  EXPECT_NE(MakePlan(o).status().message().find("'architecture'"), std::string::npos);
  o = PlanOptions();
  o.width = 0.001;
  EXPECT_NE(MakePlan(o).status().message().find("'width'"), std::string::npos);
  o = PlanOptions();
  o.input_size = 16;
  EXPECT_NE(MakePlan(o).status().message().find("'input_size'"), std::string::npos);
  o = PlanOptions();
  o.num_classes = 1;
  EXPECT_EQ(MakePlan(o).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace loupe::bnn
