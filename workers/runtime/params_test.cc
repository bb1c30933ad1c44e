#include "workers/runtime/params.h"

#include "gtest/gtest.h"
#include "loupe/v1/jobs.pb.h"
#include "workers/noop/noop_kind.h"
#include "workers/runtime/param_builders.h"
#include "workers/runtime/registry.h"

namespace loupe {
namespace {

using loupe::v1::JobSpec;
using loupe::v1::NoopParams;

// A kind with bounds and choices to exercise validation; reuses NoopParams.
class BoundedKind : public TypedJobKind<NoopParams> {
 public:
  std::string name() const override { return "noop"; }
  std::string description() const override { return "test"; }
  std::vector<ParamSpec> params() const override {
    ParamSpec sleep = TextParam("sleep_ms", "sleep");
    sleep.min = 0;  // a lower bound alone
    ParamSpec bytes = TextParam("artifact_bytes", "bytes", "0");
    bytes.min = 0;
    return {NumberParam("steps", "steps", "10", 1, 100), sleep,
            ChoiceParam("fail_with", "choice", "", {"alpha", "beta"}),
            ReferenceParam("input", "ref"), bytes};
  }

 protected:
  absl::Status ValidateParams(const NoopParams& p) const override {
    if (p.has_sleep_ms() && p.sleep_ms() > p.steps()) {
      return absl::InvalidArgumentError("noop parameter 'sleep_ms': must be at most steps");
    }
    return absl::OkStatus();
  }
  absl::Status RunJob(const NoopParams&, JobContext&) const override { return absl::OkStatus(); }
};

TEST(ParamsTest, SpecFieldNames) {
  EXPECT_EQ(SpecFieldName("sae.train"), "sae_train");
  EXPECT_EQ(SpecFieldName("noop"), "noop");
  JobSpec spec;
  auto m = MutableKindParams(&spec, "sae.train");
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(spec.has_sae_train());
  EXPECT_EQ(SetSpecField(spec), "sae_train");
  EXPECT_EQ(MutableKindParams(&spec, "nope").status().code(), absl::StatusCode::kNotFound);
  // "priority" is a JobSpec field but not a kind.
  EXPECT_FALSE(MutableKindParams(&spec, "priority").ok());
}

TEST(ParamsTest, SetFromTextParsesEachType) {
  loupe::v1::SaeTrainParams p;
  ASSERT_TRUE(SetParamFromText(&p, "d_model", "64").ok());
  ASSERT_TRUE(SetParamFromText(&p, "lr", "3e-4").ok());
  ASSERT_TRUE(SetParamFromText(&p, "steps", "1e3").ok());
  ASSERT_TRUE(SetParamFromText(&p, "source", "synthetic").ok());
  EXPECT_EQ(p.d_model(), 64);
  EXPECT_DOUBLE_EQ(p.lr(), 3e-4);
  EXPECT_EQ(p.steps(), 1000);
  EXPECT_EQ(p.source(), "synthetic");
  absl::Status s = SetParamFromText(&p, "d_model", "sixty");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'d_model'"), std::string::npos);
  EXPECT_NE(s.message().find("integer"), std::string::npos);
  EXPECT_FALSE(SetParamFromText(&p, "steps", "1.5").ok());
  EXPECT_FALSE(SetParamFromText(&p, "lr", "nan").ok());
}

TEST(ParamsTest, MisspelledNameGetsSuggestion) {
  loupe::v1::SaeTrainParams p;
  absl::Status s = SetParamFromText(&p, "d_modle", "64");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("did you mean 'd_model'?"), std::string::npos) << s;
  absl::Status far = SetParamFromText(&p, "zzzzzzzz", "1");
  EXPECT_NE(far.message().find("known:"), std::string::npos) << far;
}

TEST(ParamsTest, SuggestName) {
  EXPECT_EQ(SuggestName("batchsize", {"batch_size", "steps"}), "batch_size");
  EXPECT_EQ(SuggestName("sae.trian", {"sae.train", "noop"}), "sae.train");
  EXPECT_EQ(SuggestName("completely", {"k", "lr"}), "");
}

TEST(ParamsTest, DefaultsBoundsChoicesAndKindChecks) {
  BoundedKind kind;
  NoopParams p;
  ASSERT_TRUE(ApplyDefaultsAndValidate(kind, &p).ok());
  EXPECT_EQ(p.steps(), 10);  // default filled
  EXPECT_FALSE(p.has_sleep_ms());

  NoopParams too_big;
  too_big.set_steps(101);
  absl::Status s = ApplyDefaultsAndValidate(kind, &too_big);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "noop parameter 'steps': must be at most 100, got 101");

  NoopParams too_small;
  too_small.set_steps(0);
  EXPECT_EQ(ApplyDefaultsAndValidate(kind, &too_small).message(),
            "noop parameter 'steps': must be at least 1, got 0");

  NoopParams bad_choice;
  bad_choice.set_fail_with("alpah");
  s = ApplyDefaultsAndValidate(kind, &bad_choice);
  EXPECT_NE(s.message().find("did you mean 'alpha'"), std::string::npos) << s;

  NoopParams cross;
  cross.set_sleep_ms(50);
  EXPECT_NE(ApplyDefaultsAndValidate(kind, &cross).message().find("at most steps"),
            std::string::npos);
}

TEST(ParamsTest, ReferencesAndDescription) {
  BoundedKind kind;
  NoopParams p;
  p.set_input("dataset:abc");
  EXPECT_EQ(ReferenceValues(kind, p), std::vector<std::string>{"dataset:abc"});
  loupe::v1::JobKindInfo info = DescribeKind(kind, NoopParams::descriptor());
  ASSERT_EQ(info.params_size(), 5);
  EXPECT_EQ(info.params(0).type(), "int");
  EXPECT_EQ(info.params(0).default_value(), "10");
  EXPECT_TRUE(info.params(0).has_max());
  EXPECT_EQ(info.params(2).choices_size(), 2);
  EXPECT_TRUE(info.params(3).is_reference());

  // A list parameter names each of its comma-separated entries.
  class ListKind : public BoundedKind {
    std::vector<ParamSpec> params() const override {
      auto p = BoundedKind::params();
      p[3].is_reference_list = true;
      return p;
    }
  } list_kind;
  p.set_input("job:aaaaaaaaaaaa, job:bbbbbbbbbbbb/sae,,dataset:abc ");
  EXPECT_EQ(ReferenceValues(list_kind, p),
            (std::vector<std::string>{"job:aaaaaaaaaaaa", "job:bbbbbbbbbbbb/sae", "dataset:abc"}));
  EXPECT_EQ(ReferenceValues(kind, p).size(), 1u) << "a single reference is never split";
}

TEST(ParamsTest, ParamTableMustCoverTheMessage) {
  class Incomplete : public BoundedKind {
    std::vector<ParamSpec> params() const override { return {TextParam("steps", "s", "1")}; }
  } incomplete;
  EXPECT_FALSE(CheckParamTable(incomplete, NoopParams::descriptor()).ok());
  class BadDefault : public BoundedKind {
    std::vector<ParamSpec> params() const override {
      auto p = BoundedKind::params();
      p[0].default_value = "ten";
      return p;
    }
  } bad_default;
  EXPECT_FALSE(CheckParamTable(bad_default, NoopParams::descriptor()).ok());
  EXPECT_TRUE(CheckParamTable(BoundedKind(), NoopParams::descriptor()).ok());
}

TEST(RegistryTest, RegistersAndFindsKinds) {
  KindRegistry r;
  ASSERT_TRUE(r.Add(MakeNoopKind()).ok());
  EXPECT_EQ(r.Add(MakeNoopKind()).code(), absl::StatusCode::kAlreadyExists);
  JobSpec spec;
  spec.mutable_noop();
  ASSERT_NE(r.ForSpec(spec), nullptr);
  EXPECT_EQ(r.ForSpec(spec)->name(), "noop");
  EXPECT_EQ(r.ForSpec(JobSpec()), nullptr);
  EXPECT_EQ(r.Names(), std::vector<std::string>{"noop"});
}

}  // namespace
}  // namespace loupe
