// The pieces under the LM kinds: corpus reading and splitting, chunked
// tokenizing, the unigram baseline, chunked evaluation, the schedule and the
// window sampler.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "workers/lm/jobs/chunked_eval.h"
#include "workers/lm/jobs/corpus.h"
#include "workers/lm/jobs/optim.h"
#include "workers/lm/jobs/test_util.h"
#include "workers/lm/jobs/train_data.h"
#include "workers/lm/jobs/unigram.h"
#include "workers/lm/model/hf_io.h"
#include "workers/lm/tokenizer/bpe_trainer.h"

namespace loupe::lm {
namespace {

using ::testing::HasSubstr;
using testing::ScratchDir;
using testing::WriteFile;

TEST(Corpus, ReadsUtf8AndRefusesWhatIsNot) {
  ScratchDir dir("read");
  const std::string path = dir.File("t.txt");
  WriteFile(path, "na\xc3\xafve caf\xc3\xa9");  // "naïve café": 12 bytes
  EXPECT_EQ(*ReadUtf8Text(path, 0, "ctx: "), "na\xc3\xafve caf\xc3\xa9");
  // max_bytes never cuts a character: 3 would end inside "ï".
  EXPECT_EQ(*ReadUtf8Text(path, 3, "ctx: "), "na");
  EXPECT_EQ(*ReadUtf8Text(path, 4, "ctx: "), "na\xc3\xaf");
  EXPECT_EQ(*ReadUtf8Text(path, 11, "ctx: "), "na\xc3\xafve caf");
  EXPECT_EQ(ReadUtf8Text(path, 1 << 20, "ctx: ")->size(), 12u);

  WriteFile(path, "ok\xc3(");
  absl::StatusOr<std::string> bad = ReadUtf8Text(path, 0, "ctx: ");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("ctx: " + path + " is not valid UTF-8 (byte 2 = 0xc3)"));
  WriteFile(path, "");
  EXPECT_THAT(ReadUtf8Text(path, 0, "ctx: ").status().message(), HasSubstr("is empty"));
  EXPECT_THAT(ReadUtf8Text(dir.File("none"), 0, "ctx: ").status().message(), HasSubstr("ctx: cannot read"));
}

TEST(Corpus, HoldsOutTheLastFractionAtACharacterBoundary) {
  CorpusSplit s = SplitHeldOut("0123456789", 0.2);
  EXPECT_EQ(s.train, "01234567");
  EXPECT_EQ(s.val, "89");
  // "é" is 2 bytes; a cut inside it moves forward.
  s = SplitHeldOut("abcdefg\xc3\xa9x", 0.2);  // 10 bytes; 2 held out would start inside é
  EXPECT_EQ(s.train, "abcdefg\xc3\xa9");
  EXPECT_EQ(s.val, "x");
  EXPECT_EQ(Utf8Boundary("a\xc3\xa9", 2), 1u);
}

TEST(Corpus, ChunkedEncodingEqualsOneEncode) {
  const std::string text = testing::LicenseCorpus().substr(0, 120000);
  BpeTrainerOptions o;
  o.vocab_size = 600;
  o.special_tokens = {"<|endoftext|>"};
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = TrainByteLevelBpe({text}, o);
  ASSERT_TRUE(tok.ok()) << tok.status();
  std::vector<absl::string_view> pieces = ChunkAtLines(text, 1000);
  EXPECT_GT(pieces.size(), 50u);
  std::string joined;
  for (absl::string_view p : pieces) joined += std::string(p);
  EXPECT_EQ(joined, text);
  int calls = 0;
  absl::StatusOr<std::vector<int32_t>> chunked = EncodeInChunks(**tok, text, 1000, [&] {
    ++calls;
    return absl::OkStatus();
  });
  ASSERT_TRUE(chunked.ok());
  EXPECT_EQ(*chunked, (*tok)->Encode(text, false));
  EXPECT_EQ(calls, static_cast<int>(pieces.size()));
  // Scoring ids: <|endoftext|> as context, then the text.
  std::vector<int64_t> ids = ScoringIds(**tok, "Hello");
  EXPECT_EQ(ids[0], 0);
  EXPECT_EQ(ids.size(), (*tok)->Encode("Hello", false).size() + 1);
  // A failing check stops at once.
  absl::StatusOr<std::vector<int32_t>> stopped =
      EncodeInChunks(**tok, text, 1000, [] { return absl::CancelledError("stop"); });
  EXPECT_EQ(stopped.status().code(), absl::StatusCode::kCancelled);
}

TEST(Unigram, IsLaplaceSmoothedBitsPerByte) {
  UnigramModel u(4);
  u.Count(std::vector<int32_t>{0, 0, 1});  // counts 2, 1, 0, 0; N = 3, V = 4
  // p(0) = 3/7, p(2) = 1/7.
  const std::vector<int64_t> ids = {0, 2};
  EXPECT_NEAR(u.TotalBits(ids), -std::log2(3.0 / 7) - std::log2(1.0 / 7), 1e-12);
  EXPECT_NEAR(u.BitsPerByte(ids, 5), u.TotalBits(ids) / 5, 1e-12);
}

TEST(ChunkedEval, EqualsEvaluateTextTokenForToken) {
  testing::UseOneThread();
  CreateOptions co;
  co.seed = 3;
  for (const ModelConfig& c : {MakeGpt2Config(50, 32, 2, 4, 16), MakeLlamaConfig(50, 32, 2, 4, 2, 64, 64)}) {
    absl::StatusOr<std::shared_ptr<CausalLM>> model = CreateModel(c, co);
    ASSERT_TRUE(model.ok());
    std::vector<int64_t> ids(203);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>((i * 7 + i / 5) % 50);
    EvalOptions eo;
    eo.window = 16;
    eo.batch_size = 2;
    absl::StatusOr<TextEval> whole = EvaluateText(**model, ids, 700, eo);
    ASSERT_TRUE(whole.ok()) << whole.status();
    for (int64_t per_chunk : {1, 2, 3, 4, 100}) {
      int64_t last_done = 0, total = 0;
      absl::StatusOr<TextEval> chunked = EvaluateTextInChunks(**model, ids, 700, eo, per_chunk, [&](int64_t d, int64_t t) {
        EXPECT_GT(d, last_done);
        last_done = d;
        total = t;
        return absl::OkStatus();
      });
      ASSERT_TRUE(chunked.ok()) << chunked.status();
      EXPECT_EQ(last_done, total);
      ASSERT_EQ(chunked->token_nats.size(), whole->token_nats.size()) << per_chunk;
      // Batches differ when per_chunk is odd; the rows' values do not (beyond rounding).
      for (size_t i = 0; i < whole->token_nats.size(); ++i) {
        ASSERT_NEAR(chunked->token_nats[i], whole->token_nats[i], 1e-5) << "token " << i << ", chunk " << per_chunk;
      }
      if (per_chunk % eo.batch_size == 0) {
        EXPECT_EQ(chunked->total_nats, whole->total_nats) << per_chunk;
      }
      EXPECT_NEAR(chunked->bits_per_byte, whole->bits_per_byte, 1e-6);
    }
    // Short texts (one window) and a stop from the callback.
    std::vector<int64_t> few(ids.begin(), ids.begin() + 10);
    absl::StatusOr<TextEval> one = EvaluateTextInChunks(**model, few, 30, eo, 1, nullptr);
    ASSERT_TRUE(one.ok());
    EXPECT_EQ(one->n_tokens, 9);
    absl::StatusOr<TextEval> stopped =
        EvaluateTextInChunks(**model, ids, 700, eo, 1, [](int64_t, int64_t) { return absl::CancelledError("x"); });
    EXPECT_EQ(stopped.status().code(), absl::StatusCode::kCancelled);
  }
}

TEST(Optim, WarmsUpThenDecaysByCosine) {
  LmOptimizerOptions o;
  o.lr = 1.0;
  o.warmup_steps = 10;
  o.total_steps = 110;
  EXPECT_DOUBLE_EQ(ScheduledLr(o, 1), 0.1);
  EXPECT_DOUBLE_EQ(ScheduledLr(o, 10), 1.0);
  EXPECT_NEAR(ScheduledLr(o, 60), 0.55, 1e-12);  // half way: (1 + 0.1) / 2
  EXPECT_NEAR(ScheduledLr(o, 110), 0.1, 1e-12);
  o.warmup_steps = 0;
  EXPECT_DOUBLE_EQ(ScheduledLr(o, 1), 1.0 * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI / 110))));
}

TEST(TokenWindows, SamplesSeededWindowsOfTheCorpus) {
  std::vector<int32_t> ids(100);
  for (int i = 0; i < 100; ++i) ids[i] = i;
  TokenWindows a(ids, 10, 5), b(ids, 10, 5), c(ids, 10, 6);
  torch::Tensor x = a.Next(4);
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{4, 10}));
  EXPECT_EQ(x.scalar_type(), torch::kLong);
  EXPECT_TRUE(torch::equal(x, b.Next(4)));
  EXPECT_FALSE(torch::equal(x, c.Next(4)));
  // Consecutive tokens, inside the corpus.
  EXPECT_TRUE(torch::equal(x.diff(1, 1), torch::ones({4, 9}, torch::kLong)));
  EXPECT_LE(x.max().item<int64_t>(), 99);
  EXPECT_EQ(a.n_windows(), 91);
}

}  // namespace
}  // namespace loupe::lm
