#include "workers/bnn/network_plan.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace loupe::bnn {
namespace {

constexpr int kFloatBits = 32;
constexpr int kStemBits = 8;   // PokeInit: w8a8
constexpr int kSeBits = 4;     // SE convs: w4a4
constexpr int kDenseBits = 8;  // classifier: w8a8
constexpr int64_t kSeDivisor = 8;  // se_ratio 0.125

absl::Status ArgError(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("parameter '", field, "': ", what));
}

ConvPlan Conv(std::string name, LayerType type, int64_t in_c, int64_t out_c, int64_t kernel,
              int64_t stride, int64_t groups, bool same, int64_t in_h, int64_t in_w, int bits) {
  ConvPlan c;
  c.name = std::move(name);
  c.type = type;
  c.in_channels = in_c;
  c.out_channels = out_c;
  c.kernel = kernel;
  c.stride = stride;
  c.groups = groups;
  c.same_padding = same;
  c.in_h = in_h;
  c.in_w = in_w;
  if (same) {
    c.out_h = (in_h + stride - 1) / stride;
    c.out_w = (in_w + stride - 1) / stride;
  } else {
    c.out_h = (in_h - kernel) / stride + 1;
    c.out_w = (in_w - kernel) / stride + 1;
  }
  c.w_bits = bits;
  c.a_bits = bits;
  return c;
}

struct Builder {
  NetworkPlan plan;
  int64_t channels = 0, h = 0, w = 0;
  int conv_bits() const { return plan.binary ? 1 : kFloatBits; }
  LayerType conv_type() const { return plan.binary ? LayerType::kBinaryConv : LayerType::kFloatConv; }

  void Stem(int64_t kernel, int64_t group_channels) {
    const int bits = plan.binary ? kStemBits : kFloatBits;
    const LayerType type = plan.binary ? LayerType::kStemConv : LayerType::kFloatConv;
    // "No input pixel is used twice": kernel = stride, VALID.
    plan.stem.push_back(Conv("stem.conv", type, plan.input_channels, group_channels, kernel, kernel, 1,
                             false, h, w, bits));
    h = plan.stem.back().out_h;
    w = plan.stem.back().out_w;
    // Grouped 3×3: each group maps one channel to two.
    plan.stem.push_back(Conv("stem.grouped", type, group_channels, 2 * group_channels, 3, 1,
                             group_channels, true, h, w, bits));
    channels = 2 * group_channels;
  }

  PokeConvPlan PokeConv(const std::string& name, int64_t out_c, int64_t kernel, int64_t stride, bool se) {
    PokeConvPlan p;
    p.conv = Conv(name, conv_type(), channels, out_c, kernel, stride, 1, true, h, w, conv_bits());
    p.has_se = se;
    if (se) {
      const int bits = plan.binary ? kSeBits : kFloatBits;
      const LayerType type = plan.binary ? LayerType::kSeConv : LayerType::kFloatConv;
      const int64_t hidden = std::max<int64_t>(1, channels / kSeDivisor);
      p.se_reduce = Conv(name + ".se_reduce", type, channels, hidden, 1, 1, 1, true, 1, 1, bits);
      p.se_expand = Conv(name + ".se_expand", type, hidden, out_c, 1, 1, 1, true, 1, 1, bits);
    }
    channels = out_c;
    h = p.conv.out_h;
    w = p.conv.out_w;
    return p;
  }

  void Bottleneck(const std::string& name, int64_t filters, int64_t stride) {
    BlockPlan b;
    b.convs.push_back(PokeConv(name + ".conv1", filters, 1, 1, true));
    b.convs.push_back(PokeConv(name + ".conv2", filters, 3, stride, true));
    PokeConvPlan third = PokeConv(name + ".conv3", 4 * filters, 1, 1, true);
    third.zero_init_bn = true;
    third.block_residual = true;
    b.convs.push_back(third);
    plan.blocks.push_back(std::move(b));
  }

  // ReActNet's basic block: 3×3 binary conv (stride s) and a 1×1 binary conv
  // to out_c, each with a learnable input shift, its own shortcut and RPReLU.
  void ReactBlock(const std::string& name, int64_t out_c, int64_t stride) {
    BlockPlan b;
    PokeConvPlan c1 = PokeConv(name + ".conv3x3", channels, 3, stride, false);
    c1.learnable_shift = true;
    PokeConvPlan c2 = PokeConv(name + ".conv1x1", out_c, 1, 1, false);
    c2.learnable_shift = true;
    b.convs = {c1, c2};
    plan.blocks.push_back(std::move(b));
  }

  void Dense() {
    const int bits = plan.binary ? kDenseBits : kFloatBits;
    plan.dense = Conv("dense", plan.binary ? LayerType::kDense : LayerType::kDense, channels,
                      plan.num_classes, 1, 1, 1, true, 1, 1, bits);
  }
};

int64_t Scaled(int64_t base, double width) {
  return static_cast<int64_t>(std::floor(static_cast<double>(base) * width + 1e-9));
}

}  // namespace

const char* LayerTypeName(LayerType type) {
  switch (type) {
    case LayerType::kStemConv: return "stem";
    case LayerType::kBinaryConv: return "binary_conv";
    case LayerType::kSeConv: return "se_conv";
    case LayerType::kDense: return "dense";
    case LayerType::kFloatConv: return "float_conv";
  }
  return "unknown";
}

int64_t ConvPlan::Macs() const {
  return out_h * out_w * kernel * kernel * (in_channels / groups) * out_channels;
}

int64_t ConvPlan::Ace() const { return Macs() * w_bits * a_bits; }

std::vector<const ConvPlan*> NetworkPlan::Layers() const {
  std::vector<const ConvPlan*> out;
  for (const ConvPlan& c : stem) out.push_back(&c);
  for (const BlockPlan& b : blocks) {
    for (const PokeConvPlan& p : b.convs) {
      out.push_back(&p.conv);
      if (p.has_se) {
        out.push_back(&p.se_reduce);
        out.push_back(&p.se_expand);
      }
    }
  }
  out.push_back(&dense);
  return out;
}

const std::vector<std::string>& Architectures() {
  static const std::vector<std::string> kArchitectures = {"pokebnn", "pokebnn_small", "reactnet_small",
                                                          "float", "float_small"};
  return kArchitectures;
}

absl::StatusOr<NetworkPlan> MakePlan(const PlanOptions& o) {
  const std::string& arch = o.architecture;
  bool known = false;
  for (const std::string& a : Architectures()) known |= (a == arch);
  if (!known) return ArgError("architecture", absl::StrCat("unknown architecture '", arch, "'"));
  if (!(o.width > 0) || o.width > 64) return ArgError("width", "must be in (0, 64]");
  if (o.input_channels < 1) return ArgError("input_channels", "must be at least 1");
  if (o.num_classes < 2) return ArgError("num_classes", "must be at least 2");

  Builder b;
  b.plan.architecture = arch;
  b.plan.binary = (arch.rfind("float", 0) != 0);
  b.plan.input_channels = o.input_channels;
  b.plan.input_size = o.input_size;
  b.plan.num_classes = o.num_classes;
  b.h = b.w = o.input_size;

  const bool imagenet = (arch == "pokebnn" || arch == "float");
  // ImageNet: 4×4/s4 stem to 32 then 64 channels, four stages (÷32 overall).
  // Small: 2×2/s2 stem to 16 then 32 channels, two stages (÷4 overall).
  const int64_t stem_kernel = imagenet ? 4 : 2;
  const int64_t min_size = imagenet ? 32 : 8;
  if (o.input_size < min_size) {
    return ArgError("input_size", absl::StrCat("must be at least ", min_size, " for ", arch, ", got ",
                                               o.input_size));
  }
  b.Stem(stem_kernel, imagenet ? 32 : 16);

  struct Stage {
    int64_t blocks, filters;
  };
  const std::vector<Stage> stages = imagenet ? std::vector<Stage>{{3, 64}, {4, 128}, {6, 256}, {3, 512}}
                                             : std::vector<Stage>{{2, 16}, {2, 32}};
  for (size_t s = 0; s < stages.size(); ++s) {
    const int64_t filters = Scaled(stages[s].filters, o.width);
    if (filters < 1) {
      return ArgError("width", absl::StrCat("width ", o.width, " leaves stage ", s + 1, " with no channels"));
    }
    for (int64_t i = 0; i < stages[s].blocks; ++i) {
      const int64_t stride = (i == 0 && s > 0) ? 2 : 1;
      const std::string name = absl::StrCat("stage", s + 1, ".block", i + 1);
      if (arch == "reactnet_small") {
        // Same output widths as the bottleneck network (4 × filters).
        b.ReactBlock(name, 4 * filters, stride);
      } else {
        b.Bottleneck(name, filters, stride);
      }
    }
  }
  b.Dense();
  return std::move(b.plan);
}

CostReport ComputeCost(const NetworkPlan& plan) {
  CostReport r;
  for (const ConvPlan* c : plan.Layers()) {
    const int64_t ace = c->Ace();
    r.ace_by_type[LayerTypeName(c->type)] += ace;
    if (c == &plan.dense) {
      r.dense_ace += ace;
    } else {
      r.conv_ace += ace;
    }
    if (c->w_bits == 1 && c->a_bits == 1) {
      r.binary_macs += c->Macs();
    } else {
      r.other_macs += c->Macs();
    }
    r.parameters += c->kernel * c->kernel * (c->in_channels / c->groups) * c->out_channels;
  }
  r.total_ace = r.conv_ace + r.dense_ace;
  r.cpu64 = static_cast<double>(r.binary_macs) / 64.0 + static_cast<double>(r.other_macs);
  return r;
}

}  // namespace loupe::bnn
