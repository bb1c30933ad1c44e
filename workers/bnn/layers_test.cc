#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "workers/bnn/layers.h"
#include "workers/bnn/network.h"
#include "workers/bnn/packed_conv.h"
#include "workers/bnn/quantizers.h"

namespace loupe::bnn {
namespace {

namespace F = torch::nn::functional;

class BnnLayersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(7);
    at::set_num_threads(1);
  }
};

TEST_F(BnnLayersTest, BinarizeActivationForwardIsHalfBound) {
  const torch::Tensor x = torch::tensor({-5.0, -0.1, 0.0, 0.2, 7.0});
  for (double b : {1.0, 2.0, 3.0}) {
    const torch::Tensor q = BinarizeActivation(x, b);
    const torch::Tensor want = torch::tensor({-b / 2, -b / 2, b / 2, b / 2, b / 2});
    EXPECT_TRUE(torch::equal(q, want.to(q.scalar_type()))) << "B=" << b;
  }
}

// STE: gradient 1 strictly inside B(1−2⁻⁷), 0 outside.
TEST_F(BnnLayersTest, BinarizeActivationGradientIsClippedStraightThrough) {
  for (double b : {1.0, 3.0}) {
    const double edge = b * (1 - std::ldexp(1.0, -7));
    torch::Tensor x = torch::tensor({-b - 1, -edge, -0.5 * b, 0.0, 0.9 * edge, edge + 1e-3, 2 * b},
                                    torch::requires_grad());
    BinarizeActivation(x, b).sum().backward();
    const torch::Tensor want = torch::tensor({0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0});
    EXPECT_TRUE(torch::equal(x.grad(), want.to(x.scalar_type()))) << "B=" << b << " grad " << x.grad();
  }
}

TEST_F(BnnLayersTest, BinarizeWeightUsesPerOutputChannelMaxAbs) {
  torch::Tensor w = torch::tensor({{1.0, -4.0, 2.0}, {0.5, 0.25, -0.1}}, torch::requires_grad());
  const torch::Tensor q = BinarizeWeight(w);
  EXPECT_TRUE(torch::allclose(q, torch::tensor({{2.0, -2.0, 2.0}, {0.25, 0.25, -0.25}})));
  (q * torch::arange(6).reshape({2, 3})).sum().backward();
  EXPECT_TRUE(torch::allclose(w.grad(), torch::arange(6).reshape({2, 3}).to(torch::kFloat)));
}

TEST_F(BnnLayersTest, QuantizersUseTheirLevels) {
  const torch::Tensor w = torch::randn({4, 3, 3, 3});
  const torch::Tensor q4 = QuantizeWeight(w, 4);
  for (int64_t o = 0; o < 4; ++o) {
    const double step = w[o].abs().max().item<double>() / 7.0;
    const torch::Tensor k = q4[o] / step;
    EXPECT_TRUE(torch::allclose(k, k.round(), 1e-4, 1e-4));
    EXPECT_LE(k.abs().max().item<double>(), 7.0 + 1e-4);
  }
  const torch::Tensor a = torch::rand({2, 5, 4, 4});
  const torch::Tensor q = QuantizeActivation(a, 4, /*is_unsigned=*/true);
  for (int64_t n = 0; n < 2; ++n) {
    const double step = a[n].max().item<double>() / 15.0;
    EXPECT_TRUE(torch::allclose(q[n] / step, (q[n] / step).round(), 1e-4, 1e-4));
    EXPECT_LE((q[n] - a[n]).abs().max().item<double>(), step / 2 + 1e-6);
  }
  const torch::Tensor q8 = QuantizeActivation(torch::randn({3, 10}), 8, false);
  EXPECT_LE(std::get<0>(at::_unique(q8[0])).numel(), 255);
}

TEST_F(BnnLayersTest, DPReLUHasTwoSlopesAndTwoShifts) {
  DPReLU act(2);
  {
    torch::NoGradGuard g;
    act->bias_x.copy_(torch::tensor({1.0, 0.0}));
    act->bias_y.copy_(torch::tensor({0.5, 0.0}));
  }
  const torch::Tensor x = torch::tensor({3.0, -2.0, 3.0, -2.0}).reshape({1, 2, 2, 1});
  const torch::Tensor y = act->forward(x);
  // Channel 0: (3−1)·1 − 0.5 = 1.5; (−2−1)·0.25 − 0.5 = −1.25. Channel 1: 3, −0.5.
  EXPECT_TRUE(torch::allclose(y.flatten(), torch::tensor({1.5, -1.25, 3.0, -0.5})));
}

TEST_F(BnnLayersTest, ReshapeResidualAveragesPadsAndTiles) {
  const torch::Tensor r = torch::arange(8).to(torch::kFloat).reshape({1, 4, 1, 2});
  // 4 → 2 channels: mean of consecutive pairs.
  const torch::Tensor down = ReshapeResidual(r, 2, 1, false);
  EXPECT_TRUE(torch::allclose(down.flatten(), torch::tensor({1.0, 2.0, 5.0, 6.0})));
  EXPECT_EQ(ReshapeResidual(r, 8, 1, false).slice(1, 4).abs().sum().item<double>(), 0.0);
  EXPECT_TRUE(torch::equal(ReshapeResidual(r, 8, 1, true).slice(1, 4), r));
  const torch::Tensor big = torch::ones({1, 2, 14, 14});
  const torch::Tensor pooled = ReshapeResidual(big, 2, 7, false);
  EXPECT_EQ(pooled.size(2), 7);
  EXPECT_NEAR(pooled[0][0][3][3].item<double>(), 1.0, 1e-6);
  EXPECT_NEAR(pooled[0][0][0][0].item<double>(), 4.0 / 9.0, 1e-6);  // SAME padding counted
}

// The packed kernel's integer equals a float conv of the signs, exactly.
TEST_F(BnnLayersTest, PackedConvEqualsConvOfSignsExactly) {
  struct Case {
    int64_t c, o, k, stride, pad, h;
  };
  for (const Case& cs : {Case{70, 9, 3, 1, 1, 6}, Case{64, 8, 3, 2, 1, 7}, Case{130, 5, 1, 1, 0, 5},
                         Case{16, 4, 1, 2, 0, 7}, Case{3, 6, 3, 1, 1, 4}}) {
    torch::Tensor x = torch::randn({2, cs.c, cs.h, cs.h});
    x.index_put_({0, 0, 0, 0}, 0.0);  // 0 counts as +
    const torch::Tensor w = torch::randn({cs.o, cs.c, cs.k, cs.k});
    auto sign = [](const torch::Tensor& t) { return torch::where(t >= 0, 1.0, -1.0).to(torch::kDouble); };
    const torch::Tensor want =
        F::conv2d(sign(x), sign(w), F::Conv2dFuncOptions().stride(cs.stride).padding(cs.pad)).to(torch::kInt);
    const PackedWeights pw = PackWeights(w);
    for (PopcountKernel kernel : {PopcountKernel::kPortable, PopcountKernel::kPopcnt, BestPopcountKernel()}) {
      const torch::Tensor got = BinaryConv2d(x, pw, cs.stride, cs.pad, kernel);
      EXPECT_TRUE(torch::equal(got, want)) << "c=" << cs.c << " k=" << cs.k << " stride=" << cs.stride
                                           << " kernel=" << PopcountKernelName(kernel);
    }
  }
}

NetworkPlan SmallPlan(const std::string& arch) {
  PlanOptions o;
  o.architecture = arch;
  o.width = 0.5;
  o.input_size = 28;
  o.input_channels = 1;
  o.num_classes = 10;
  return *MakePlan(o);
}

// Packed inference reproduces the fake-quantized network (float rescaling
// only differs by rounding) and the binary part exactly.
TEST_F(BnnLayersTest, PackedNetworkMatchesFakeQuantizedNetwork) {
  for (const std::string arch : {"pokebnn_small", "reactnet_small"}) {
    BnnNetwork net(SmallPlan(arch), 2.0);
    // A few training steps so BN statistics and weights are not at init.
    torch::optim::Adam opt(net->parameters(), 1e-2);
    for (int i = 0; i < 3; ++i) {
      opt.zero_grad();
      F::cross_entropy(net->forward(torch::randn({8, 1, 28, 28})), torch::randint(10, {8})).backward();
      opt.step();
    }
    net->eval();
    torch::NoGradGuard g;
    const torch::Tensor x = torch::randn({4, 1, 28, 28});
    const torch::Tensor fake = net->forward(x);
    net->SetPacked(true);
    const torch::Tensor packed = net->forward(x);
    net->SetPacked(false);
    EXPECT_TRUE(torch::allclose(fake, packed, 1e-3, 1e-3)) << arch << (fake - packed).abs().max();
  }
}

TEST_F(BnnLayersTest, QuantConvPackedEqualsFakeQuantPerOutput) {
  ConvPlan p;
  p.in_channels = 96;
  p.out_channels = 12;
  p.kernel = 3;
  p.in_h = p.in_w = p.out_h = p.out_w = 5;
  QuantConv conv(p, 3.0, false, InputQuant::kSigned);
  conv->eval();
  torch::NoGradGuard g;
  const torch::Tensor x = torch::randn({2, 96, 5, 5});
  const torch::Tensor fake = conv->forward(x);
  conv->SetPacked(true);
  const torch::Tensor packed = conv->forward(x);
  // Both are (B/2)(max|w_o|/2) × the same integer.
  const torch::Tensor scale = BinaryWeightScale(conv->weight).reshape({1, -1, 1, 1}) * 1.5;
  EXPECT_TRUE(torch::equal((fake / scale).round(), (packed / scale).round()));
  EXPECT_TRUE(torch::allclose(fake, packed, 1e-5, 1e-4));
}

// Gradients reach every parameter through the STEs.
TEST_F(BnnLayersTest, EveryParameterGetsAGradient) {
  for (const std::string arch : {"pokebnn_small", "reactnet_small", "float_small"}) {
    BnnNetwork net(SmallPlan(arch), 3.0);
    const torch::Tensor logits = net->forward(torch::randn({4, 1, 28, 28}));
    EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{4, 10}));
    F::cross_entropy(logits, torch::randint(10, {4})).backward();
    for (const auto& p : net->named_parameters()) {
      ASSERT_TRUE(p.value().grad().defined()) << arch << " " << p.key();
      // Zero-initialised BN scales block the gradient of their own conv's
      // weights on the first step; everything else must move.
      if (p.key().find("conv2.conv.weight") != std::string::npos) continue;
      EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << arch << " " << p.key();
    }
  }
}

TEST_F(BnnLayersTest, PokeBnnAt64PixelsRuns) {
  PlanOptions o;
  o.width = 0.25;
  o.input_size = 64;
  o.num_classes = 5;
  BnnNetwork net(*MakePlan(o), 3.0);
  torch::NoGradGuard g;
  net->eval();
  EXPECT_EQ(net->forward(torch::randn({1, 3, 64, 64})).sizes(), (std::vector<int64_t>{1, 5}));
}

}  // namespace
}  // namespace loupe::bnn
