#include "workers/bnn/bnn_train_kind.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "loupe/v1/kinds.pb.h"
#include "workers/bnn/cost_table.h"
#include "workers/bnn/image_data.h"
#include "workers/bnn/network.h"
#include "workers/bnn/network_plan.h"
#include "workers/bnn/packed_conv.h"
#include "workers/bnn/trainer.h"
#include "workers/common/safetensors_torch.h"
#include "workers/runtime/param_builders.h"
#include "workers/runtime/params.h"

namespace loupe {
namespace bnn {
namespace {
std::string& DefaultDataDir() {
  static std::string dir = kFashionMnistDir;
  return dir;
}
}  // namespace
void SetDefaultDataDirForTesting(const std::string& dir) { DefaultDataDir() = dir; }
}  // namespace bnn

namespace {

using loupe::v1::BnnTrainParams;

constexpr char kName[] = "bnn.train";
constexpr char kModelFile[] = "model.safetensors";
constexpr char kTableFile[] = "accuracy_vs_ace.csv";
constexpr char kCostFile[] = "cost.json";

absl::Status ParamError(absl::string_view param, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(kName, " parameter '", param, "': ", what));
}

ParamSpec Text(const char* name, const char* help, const char* default_value,
               std::vector<std::string> choices = {}, bool reference = false) {
  ParamSpec p;
  p.name = name;
  p.help = help;
  p.default_value = default_value;
  p.choices = std::move(choices);
  p.is_reference = reference;
  return p;
}

ParamSpec Flag(const char* name, const char* help, const char* default_value) {
  ParamSpec p;
  p.name = name;
  p.help = help;
  p.default_value = default_value;
  return p;
}

absl::StatusOr<std::vector<double>> ParseSweep(const std::string& text) {
  std::vector<double> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    double v;
    if (!absl::SimpleAtod(absl::StripAsciiWhitespace(part), &v) || !(v > 0) || v > 1000) {
      return ParamError("clip_bound_sweep",
                        absl::StrCat("'", part, "' is not a clip bound in (0, 1000]; want e.g. \"1,2,3\""));
    }
    out.push_back(v);
  }
  return out;
}

bool IsFloat(const std::string& arch) { return arch.rfind("float", 0) == 0; }

// One trained network's line of accuracy_vs_ace.csv.
struct RunRow {
  std::string model, architecture;
  double clip_bound = 0;
  int64_t epochs = 0;
  bnn::CostReport cost;
  double test_accuracy = 0, packed_test_accuracy = -1, train_loss = 0, seconds = 0;
};

std::string TableCsv(const std::vector<RunRow>& rows) {
  std::ostringstream out;
  out << "model,architecture,clip_bound,epochs,total_ace,conv_ace,dense_ace,cpu64,test_accuracy,"
         "packed_test_accuracy,train_loss,seconds\n";
  for (const RunRow& r : rows) {
    out << absl::StrFormat("%s,%s,%s,%d,%d,%d,%d,%.1f,%.4f,%s,%.4f,%.1f\n", r.model, r.architecture,
                           r.clip_bound > 0 ? absl::StrFormat("%g", r.clip_bound) : "", r.epochs,
                           r.cost.total_ace, r.cost.conv_ace, r.cost.dense_ace, r.cost.cpu64, r.test_accuracy,
                           r.packed_test_accuracy >= 0 ? absl::StrFormat("%.4f", r.packed_test_accuracy) : "",
                           r.train_loss, r.seconds);
  }
  return out.str();
}

class BnnTrainKind : public TypedJobKind<BnnTrainParams> {
 public:
  std::string name() const override { return kName; }
  std::string description() const override {
    return "Trains a PokeBNN-style binary network (binary 1×1/3×3 convs with DPReLU, local and block "
           "residuals and a 4-bit SE gate; 8-bit stem and classifier) on image classification data — "
           "Debian's Fashion-MNIST by default — with Adam, optional distillation from a float teacher "
           "and an optional sweep over the activation clip bound B. Reports test accuracy, ACE and "
           "CPU64 per epoch, evaluates the trained network with real bit-packed XNOR-popcount kernels, "
           "and writes model.safetensors, accuracy_vs_ace.csv and cost.json.";
  }
  std::vector<ParamSpec> params() const override {
    return {
        Text("architecture",
             "pokebnn_small (28×28 PokeBNN), reactnet_small (ReActNet-style blocks), float_small (same "
             "shape as pokebnn_small in float32), or pokebnn / float (ResNet-50 stage plan, inputs ≥ 32²)",
             "pokebnn_small", bnn::Architectures()),
        NumberParam("width", "Channel multiplier of the stages (16·width and 32·width bottleneck filters for the small "
                        "networks)", "0.5", 0.01, 16),
        Text("train_images", "Training images, IDX (optionally .gz) or .npy [N,H,W] / [N,C,H,W]; all four "
                             "data fields empty: Debian's dataset-fashion-mnist", "", {}, true),
        Text("train_labels", "Training labels (IDX or .npy, integers)", "", {}, true),
        Text("test_images", "Test images", "", {}, true),
        Text("test_labels", "Test labels", "", {}, true),
        NumberParam("epochs", "Training epochs of each network", "1", 1, 1000),
        NumberParam("batch_size", "Images per step", "128", 1, 65536),
        NumberParam("lr", "Peak Adam learning rate (betas 0.9, 0.99)", "0.005", 1e-7, 1),
        Text("lr_schedule", "Decay after warm-up: cosine, linear (to 0) or constant", "cosine",
             {"cosine", "linear", "constant"}),
        NumberParam("warmup_steps", "Steps of linear learning-rate warm-up", "0", 0, 1e7),
        NumberParam("weight_decay", "Adam L2 weight decay (PokeBNN: 5e-5)", "5e-5", 0, 1),
        NumberParam("clip_bound", "Clip bound B of the activation binarizer: forward ±B/2, gradient where |x| < B "
                             "(PokeBNN: 3)", "3.0", 1e-3, 1000),
        Text("clip_bound_sweep", "Comma-separated clip bounds, one network each (e.g. 1,2,3); the best "
                                 "is saved. Empty: only clip_bound", ""),
        Flag("distill", "Train a float teacher of the same shape first and distil from its softmax",
             "false"),
        NumberParam("teacher_epochs", "Epochs of the float teacher when distill is true", "1", 1, 1000),
        NumberParam("distill_temperature", "Softmax temperature of distillation", "1.0", 0.05, 100),
        NumberParam("train_limit", "Use at most this many training images (0: all)", "0", 0, 1e9),
        NumberParam("test_limit", "Use at most this many test images (0: all)", "0", 0, 1e9),
        Flag("packed_eval", "Also evaluate with the bit-packed XNOR-popcount kernels", "true"),
        NumberParam("seed", "Seed of initialisation and data order", "0", 0, 9007199254740991.0),
    };
  }
  std::vector<std::string> result_fields() const override {
    return {"test_accuracy", "packed_test_accuracy", "teacher_test_accuracy", "clip_bound", "total_ace",
            "conv_ace", "dense_ace", "cpu64", "train_loss", "seconds"};
  }
  std::vector<std::string> artifact_names() const override { return {kModelFile, kTableFile, kCostFile}; }

 protected:
  absl::Status ValidateParams(const BnnTrainParams& p) const override {
    const int given = !p.train_images().empty() + !p.train_labels().empty() + !p.test_images().empty() +
                      !p.test_labels().empty();
    if (given != 0 && given != 4) {
      for (const auto& [field, value] : std::vector<std::pair<const char*, std::string>>{
               {"train_images", p.train_images()},
               {"train_labels", p.train_labels()},
               {"test_images", p.test_images()},
               {"test_labels", p.test_labels()}}) {
        if (value.empty()) return ParamError(field, "missing: give all four data files or none (Fashion-MNIST)");
      }
    }
    if (absl::StatusOr<std::vector<double>> s = ParseSweep(p.clip_bound_sweep()); !s.ok()) return s.status();
    if (p.distill() && IsFloat(p.architecture())) {
      return ParamError("distill", "the architecture is already a float network; distil a binary one");
    }
    return absl::OkStatus();
  }

  absl::Status RunJob(const BnnTrainParams& given, JobContext& ctx) const override {
    BnnTrainParams p = given;
    if (absl::Status s = ApplyDefaultsAndValidate(*this, &p); !s.ok()) return s;
    const auto started = std::chrono::steady_clock::now();
    auto seconds = [&] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    };
    const torch::Device device(torch::kCPU);

    absl::StatusOr<bnn::ImageData> data = LoadData(p, ctx);
    if (!data.ok()) return data.status();
    Limit(data->train, p.train_limit());
    Limit(data->test, p.test_limit());
    const auto [mean, std] = bnn::ChannelStats(data->train.images);
    data->train.images = bnn::Normalize(data->train.images, mean, std);
    data->test.images = bnn::Normalize(data->test.images, mean, std);

    bnn::PlanOptions po;
    po.architecture = p.architecture();
    po.width = p.width();
    po.input_size = data->train.images.size(2);
    po.input_channels = data->train.images.size(1);
    po.num_classes = data->num_classes;
    absl::StatusOr<bnn::NetworkPlan> plan = bnn::MakePlan(po);
    if (!plan.ok()) return absl::InvalidArgumentError(absl::StrCat(kName, " ", plan.status().message()));
    const bnn::CostReport cost = bnn::ComputeCost(*plan);

    absl::StatusOr<std::vector<double>> sweep = ParseSweep(p.clip_bound_sweep());
    if (!sweep.ok()) return sweep.status();
    std::vector<double> bounds = sweep->empty() ? std::vector<double>{p.clip_bound()} : *sweep;
    if (IsFloat(p.architecture())) bounds = {p.clip_bound()};  // B has no effect on a float network

    bnn::TrainOptions to;
    to.epochs = p.epochs();
    to.batch_size = p.batch_size();
    to.lr = p.lr();
    to.lr_schedule = p.lr_schedule();
    to.warmup_steps = p.warmup_steps();
    to.weight_decay = p.weight_decay();
    to.distill_temperature = p.distill_temperature();
    to.seed = static_cast<uint64_t>(p.seed());
    const int64_t per_epoch = bnn::StepsPerEpoch(data->train.images.size(0), p.batch_size());
    const int64_t total_steps =
        per_epoch * (p.epochs() * static_cast<int64_t>(bounds.size()) + (p.distill() ? p.teacher_epochs() : 0));

    ctx.Log(absl::StrFormat(
        "bnn.train: %s width %g on %d×%d×%d images (%d train, %d test, %d classes); ACE %d (conv %d, dense "
        "%d), CPU64 %.4g; %d epoch(s) × %d steps, batch %d, lr %g (%s), clip bound(s) %s%s; popcount kernel "
        "%s; threads=%d",
        p.architecture(), p.width(), po.input_channels, po.input_size, po.input_size,
        data->train.images.size(0), data->test.images.size(0), po.num_classes, cost.total_ace, cost.conv_ace,
        cost.dense_ace, cost.cpu64, p.epochs(), per_epoch, p.batch_size(), p.lr(), p.lr_schedule(),
        absl::StrJoin(bounds, ","), p.distill() ? ", distilled from a float teacher" : "",
        bnn::PopcountKernelName(bnn::BestPopcountKernel()), at::get_num_threads()));

    int64_t epoch_counter = 0;
    std::vector<RunRow> rows;
    auto on_step = [&](int64_t offset) {
      return [&ctx, offset, total_steps](int64_t step, double) -> absl::Status {
        ctx.ReportProgress(offset + step, total_steps);
        return ctx.CheckContinue();
      };
    };
    int64_t steps_done = 0;

    std::optional<bnn::BnnNetwork> teacher;
    if (p.distill()) {
      bnn::PlanOptions tpo = po;
      tpo.architecture = p.architecture() == "pokebnn" ? "float" : "float_small";
      absl::StatusOr<bnn::NetworkPlan> tplan = bnn::MakePlan(tpo);
      if (!tplan.ok()) return tplan.status();
      torch::manual_seed(p.seed() + 1);
      teacher = bnn::BnnNetwork(*tplan, p.clip_bound());
      (*teacher)->to(device);
      bnn::TrainOptions tto = to;
      tto.epochs = p.teacher_epochs();
      RunRow row{"teacher", tpo.architecture, 0, p.teacher_epochs(), bnn::ComputeCost(*tplan)};
      const double t0 = seconds();
      bnn::TrainCallbacks cb;
      cb.on_step = on_step(steps_done);
      cb.on_epoch = [&](const bnn::EpochReport& r) {
        ctx.ReportMetrics(++epoch_counter, {{"teacher_test_accuracy", r.test_accuracy},
                                            {"teacher_train_loss", r.train_loss}});
        ctx.Log(absl::StrFormat("teacher epoch %d: train loss %.4f, test accuracy %.4f", r.epoch, r.train_loss,
                                r.test_accuracy));
        row.test_accuracy = r.test_accuracy;
        row.train_loss = r.train_loss;
      };
      if (absl::Status s = bnn::Train(*teacher, data->train, data->test, tto, nullptr, cb); !s.ok()) return s;
      steps_done += per_epoch * p.teacher_epochs();
      row.seconds = seconds() - t0;
      ctx.SetResult("teacher_test_accuracy", row.test_accuracy);
      rows.push_back(row);
    }

    std::optional<size_t> best;
    safetensors::TensorMap best_state;
    for (double bound : bounds) {
      torch::manual_seed(p.seed());
      bnn::BnnNetwork net(*plan, bound);
      net->to(device);
      RunRow row{IsFloat(p.architecture()) ? "float" : "student", p.architecture(),
                 IsFloat(p.architecture()) ? 0.0 : bound, p.epochs(), cost};
      const double t0 = seconds();
      bnn::TrainCallbacks cb;
      cb.on_step = on_step(steps_done);
      cb.on_epoch = [&](const bnn::EpochReport& r) {
        ctx.ReportMetrics(++epoch_counter, {{"test_accuracy", r.test_accuracy},
                                            {"train_loss", r.train_loss},
                                            {"ace", static_cast<double>(cost.total_ace)},
                                            {"cpu64", cost.cpu64},
                                            {"clip_bound", bound},
                                            {"lr", r.lr}});
        ctx.Log(absl::StrFormat("B=%g epoch %d: train loss %.4f, test accuracy %.4f (%.0f s)", bound, r.epoch,
                                r.train_loss, r.test_accuracy, seconds()));
        row.test_accuracy = r.test_accuracy;
        row.train_loss = r.train_loss;
      };
      if (absl::Status s = bnn::Train(net, data->train, data->test, to, teacher ? &*teacher : nullptr, cb);
          !s.ok()) {
        return s;
      }
      steps_done += per_epoch * p.epochs();
      if (p.packed_eval() && plan->binary) {
        net->eval();
        net->SetPacked(true);
        row.packed_test_accuracy = bnn::Evaluate(net, data->test);
        net->SetPacked(false);
        ctx.Log(absl::StrFormat("B=%g: bit-packed XNOR-popcount test accuracy %.4f (fake-quantized %.4f)", bound,
                                row.packed_test_accuracy, row.test_accuracy));
      }
      row.seconds = seconds() - t0;
      rows.push_back(row);
      if (!best || row.test_accuracy > rows[*best].test_accuracy) {
        best = rows.size() - 1;
        best_state.clear();
        for (const auto& [name, t] : net->StateDict()) best_state[name] = t.clone();
      }
    }

    const RunRow& chosen = rows[*best];
    ctx.SetResult("test_accuracy", chosen.test_accuracy);
    if (chosen.packed_test_accuracy >= 0) ctx.SetResult("packed_test_accuracy", chosen.packed_test_accuracy);
    if (plan->binary) ctx.SetResult("clip_bound", chosen.clip_bound);
    ctx.SetResult("total_ace", static_cast<double>(cost.total_ace));
    ctx.SetResult("conv_ace", static_cast<double>(cost.conv_ace));
    ctx.SetResult("dense_ace", static_cast<double>(cost.dense_ace));
    ctx.SetResult("cpu64", cost.cpu64);
    ctx.SetResult("train_loss", chosen.train_loss);

    const safetensors::Metadata meta = {
        {"architecture", p.architecture()},
        {"width", absl::StrFormat("%g", p.width())},
        {"clip_bound", absl::StrFormat("%g", chosen.clip_bound)},
        {"input_size", absl::StrCat(po.input_size)},
        {"input_channels", absl::StrCat(po.input_channels)},
        {"num_classes", absl::StrCat(po.num_classes)},
        {"input_mean", absl::StrJoin(std::vector<float>(mean.data_ptr<float>(), mean.data_ptr<float>() + mean.numel()), ",")},
        {"input_std", absl::StrJoin(std::vector<float>(std.data_ptr<float>(), std.data_ptr<float>() + std.numel()), ",")},
        {"test_accuracy", absl::StrFormat("%.4f", chosen.test_accuracy)},
        {"total_ace", absl::StrCat(cost.total_ace)},
        {"trained_by", absl::StrCat("loupe bnn.train job ", ctx.job_id())}};
    absl::StatusOr<std::string> bytes = safetensors::SerializeTensors(best_state, meta);
    if (!bytes.ok()) return bytes.status();
    if (absl::Status s = ctx.WriteArtifact(kModelFile, *bytes, "application/octet-stream"); !s.ok()) return s;
    if (absl::Status s = ctx.WriteArtifact(kTableFile, TableCsv(rows), "text/csv"); !s.ok()) return s;
    if (absl::Status s = ctx.WriteArtifact(kCostFile, bnn::CostJson(*plan, cost), "application/json"); !s.ok())
      return s;
    const double elapsed = seconds();
    ctx.SetResult("seconds", elapsed);
    ctx.Log(absl::StrFormat("bnn.train: done in %.1f s; best B=%g test accuracy %.4f at ACE %d", elapsed,
                            chosen.clip_bound, chosen.test_accuracy, cost.total_ace));
    return absl::OkStatus();
  }

 private:
  static void Limit(bnn::ImageSet& s, int64_t limit) {
    if (limit > 0 && limit < s.images.size(0)) {
      s.images = s.images.slice(0, 0, limit).contiguous();
      s.labels = s.labels.slice(0, 0, limit).contiguous();
    }
  }

  static absl::StatusOr<bnn::ImageData> LoadData(const BnnTrainParams& p, JobContext& ctx) {
    if (p.train_images().empty()) return bnn::LoadMnistStyleDir(bnn::DefaultDataDir());
    std::vector<std::string> paths;
    for (const std::string& ref : {p.train_images(), p.train_labels(), p.test_images(), p.test_labels()}) {
      absl::StatusOr<std::string> path = ctx.ResolveInput(ref);
      if (!path.ok()) return path.status();
      paths.push_back(*path);
    }
    return bnn::LoadImageData(paths[0], paths[1], paths[2], paths[3]);
  }
};

}  // namespace

std::unique_ptr<JobKind> MakeBnnTrainKind() { return std::make_unique<BnnTrainKind>(); }

}  // namespace loupe
