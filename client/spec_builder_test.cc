// JobSpec building for `loupe submit`: params, flags, spec files and the
// order in which they override each other; misspellings and suggestions.
#include "client/spec_builder.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace loupe::cli {
namespace {

using ::testing::HasSubstr;

SubmitFlags Flags(const std::string& kind, std::vector<std::string> params = {}) {
  SubmitFlags f;
  f.kind = kind;
  f.params = std::move(params);
  return f;
}

TEST(BuildJobSpec, KindAndParams) {
  auto spec = BuildJobSpec(Flags("sae.train", {"d_model=64", "lr=3e-4", "source=synthetic"}), "");
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_TRUE(spec->has_sae_train());
  EXPECT_EQ(spec->sae_train().d_model(), 64);
  EXPECT_DOUBLE_EQ(spec->sae_train().lr(), 3e-4);
  EXPECT_EQ(spec->sae_train().source(), "synthetic");
  EXPECT_FALSE(spec->sae_train().has_k());  // untouched: the server's default applies
}

TEST(BuildJobSpec, KindWithoutParamsStillSelectsIt) {
  auto spec = BuildJobSpec(Flags("noop"), "");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->params_case(), v1::JobSpec::kNoop);
}

TEST(BuildJobSpec, ValueMayContainEquals) {
  auto spec = BuildJobSpec(Flags("noop", {"fail_with=a=b"}), "");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->noop().fail_with(), "a=b");
}

TEST(BuildJobSpec, MisspelledParameterGetsASuggestion) {
  auto spec = BuildJobSpec(Flags("sae.train", {"d_modle=64"}), "");
  ASSERT_FALSE(spec.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(spec.status()));
  EXPECT_EQ(spec.status().message(), "unknown parameter 'd_modle'; did you mean 'd_model'?");
}

TEST(BuildJobSpec, BadValuesAndMalformedPairs) {
  auto spec = BuildJobSpec(Flags("sae.train", {"d_model=sixty"}), "");
  ASSERT_FALSE(spec.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(spec.status()));
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("d_model"));

  spec = BuildJobSpec(Flags("sae.train", {"d_model"}), "");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("expected key=value"));

  spec = BuildJobSpec(Flags("sae.train", {"=3"}), "");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("empty key"));
}

TEST(BuildJobSpec, UnknownKindIsNotFoundForTheCallerToExplain) {
  auto spec = BuildJobSpec(Flags("sae.trian"), "");
  ASSERT_FALSE(spec.ok());
  EXPECT_TRUE(absl::IsNotFound(spec.status())) << spec.status();
  spec = BuildJobSpec(Flags("priority"), "");  // a JobSpec field, but not a kind
  EXPECT_TRUE(absl::IsNotFound(spec.status())) << spec.status();
}

TEST(BuildJobSpec, NoKindAtAll) {
  auto spec = BuildJobSpec(Flags(""), "");
  ASSERT_FALSE(spec.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(spec.status()));
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("no job kind"));
}

TEST(BuildJobSpec, Flags) {
  SubmitFlags f = Flags("noop");
  f.priority = 5;
  f.max_attempts = 3;
  f.time_limit = "1h30m";
  f.idempotency_key = "run-42";
  f.labels = {"team=interp", "exp=a=b"};
  auto spec = BuildJobSpec(f, "");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->priority(), 5);
  EXPECT_EQ(spec->max_attempts(), 3);
  EXPECT_EQ(spec->time_limit().seconds(), 5400);
  EXPECT_EQ(spec->idempotency_key(), "run-42");
  EXPECT_EQ(spec->labels().at("team"), "interp");
  EXPECT_EQ(spec->labels().at("exp"), "a=b");
}

TEST(BuildJobSpec, BadTimeLimitAndLabel) {
  SubmitFlags f = Flags("noop");
  f.time_limit = "10x";
  auto spec = BuildJobSpec(f, "");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("--time-limit: invalid duration '10x'"));
  f.time_limit = "";
  f.labels = {"nolabel"};
  spec = BuildJobSpec(f, "");
  ASSERT_FALSE(spec.ok());
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("--label 'nolabel'"));
}

TEST(SpecFile, CamelCaseAndProtoNamesBothParse) {
  auto a = ParseSpecJson(R"({"saeTrain": {"dModel": 64}, "priority": 3, "maxAttempts": 2,
                             "timeLimit": "90s", "labels": {"x": "y"}})");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->sae_train().d_model(), 64);
  EXPECT_EQ(a->priority(), 3);
  EXPECT_EQ(a->max_attempts(), 2);
  EXPECT_EQ(a->time_limit().seconds(), 90);
  auto b = ParseSpecJson(R"({"sae_train": {"d_model": "64"}, "idempotency_key": "k"})");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->sae_train().d_model(), 64);
  EXPECT_EQ(b->idempotency_key(), "k");
}

TEST(SpecFile, ErrorsAreInvalidArgument) {
  EXPECT_TRUE(absl::IsInvalidArgument(ParseSpecJson("{").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ParseSpecJson(R"({"saeTrain": {"dModle": 64}})").status()));
  auto spec = BuildJobSpec(Flags(""), R"({"sae_train": {"d_modle": 1}})");
  ASSERT_FALSE(spec.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(spec.status()));
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("spec file: "));
}

TEST(SpecFile, SelectsTheKindWhenKindIsOmitted) {
  auto spec = BuildJobSpec(Flags("", {"k=8"}), R"({"saeTrain": {"dModel": 64}})");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->sae_train().d_model(), 64);
  EXPECT_EQ(spec->sae_train().k(), 8);
}

TEST(SpecFile, OverrideOrderFileThenParamsThenFlags) {
  const std::string file = R"({"sae_train": {"d_model": 64, "k": 16, "lr": 0.001},
                               "priority": 3, "max_attempts": 4, "time_limit": "60s",
                               "idempotency_key": "file-key",
                               "labels": {"team": "file", "keep": "yes"}})";
  SubmitFlags f = Flags("sae.train", {"d_model=128", "k=8", "d_model=256"});
  f.priority = 9;
  f.time_limit = "2m";
  f.labels = {"team=cli", "extra=1"};
  auto spec = BuildJobSpec(f, file);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->sae_train().d_model(), 256);     // --param beats the file; last --param wins
  EXPECT_EQ(spec->sae_train().k(), 8);
  EXPECT_DOUBLE_EQ(spec->sae_train().lr(), 0.001);  // from the file, untouched
  EXPECT_EQ(spec->priority(), 9);                   // flag beats the file
  EXPECT_EQ(spec->max_attempts(), 4);               // no flag: the file's
  EXPECT_EQ(spec->time_limit().seconds(), 120);
  EXPECT_EQ(spec->idempotency_key(), "file-key");
  EXPECT_EQ(spec->labels().at("team"), "cli");      // same key: the command line wins
  EXPECT_EQ(spec->labels().at("keep"), "yes");      // labels merge
  EXPECT_EQ(spec->labels().at("extra"), "1");
}

TEST(SpecFile, KindMustAgreeWithTheFile) {
  auto spec = BuildJobSpec(Flags("noop"), R"({"saeTrain": {"dModel": 64}})");
  ASSERT_FALSE(spec.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(spec.status()));
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("'sae_train'"));
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("'noop'"));
  // The same kind named either way is fine.
  EXPECT_TRUE(BuildJobSpec(Flags("sae.train"), R"({"saeTrain": {}})").ok());
  EXPECT_TRUE(BuildJobSpec(Flags("sae_train"), R"({"saeTrain": {}})").ok());
}

TEST(UnknownKind, MessageSuggestsAndLists) {
  EXPECT_EQ(UnknownKindMessage("sae.trian", {"noop", "sae.train"}),
            "unknown job kind 'sae.trian'; did you mean 'sae.train'? (known kinds: noop, sae.train)");
  EXPECT_EQ(UnknownKindMessage("zzzzzzzz", {"noop", "sae.train"}),
            "unknown job kind 'zzzzzzzz' (known kinds: noop, sae.train)");
  EXPECT_EQ(UnknownKindMessage("x", {}), "unknown job kind 'x'");
}

TEST(JobStateFlag, Names) {
  EXPECT_EQ(*ParseJobStateFlag("running"), v1::RUNNING);
  EXPECT_EQ(*ParseJobStateFlag("SUCCEEDED"), v1::SUCCEEDED);
  EXPECT_EQ(*ParseJobStateFlag("canceled"), v1::CANCELLED);
  auto bad = ParseJobStateFlag("runing");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("did you mean 'running'?"));
  EXPECT_FALSE(ParseJobStateFlag("job_state_unspecified").ok());
  EXPECT_FALSE(ParseJobStateFlag("").ok());
}

}  // namespace
}  // namespace loupe::cli
