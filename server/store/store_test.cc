#include "server/store/store.h"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <filesystem>
#include <future>
#include <map>
#include <thread>

#include "gtest/gtest.h"
#include "server/store/blob_store.h"
#include "server/store/schema.h"
#include "server/store/sqlite.h"

namespace loupe::store {
namespace {

namespace fs = std::filesystem;
using loupe::v1::JobState;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("loupe-store-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  void Reopen() {
    store_.reset();
    auto s = Store::Open((dir_ / "loupe.db").string());
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
    store_->SetEventListener([this](const std::vector<loupe::v1::JobEvent>& e) {
      // Progress mostly comes through the writer thread; delaying it gives a
      // commit made later on a caller's thread the chance to overtake it.
      if (slow_progress_ && std::any_of(e.begin(), e.end(), [](const auto& ev) {
            return ev.has_progress();
          })) {
        std::this_thread::sleep_for(std::chrono::milliseconds(3));
      }
      std::lock_guard<std::mutex> l(mu_);
      published_.insert(published_.end(), e.begin(), e.end());
    });
  }
  NewJob Job(const std::string& owner, int priority = 0, const std::string& key = "") {
    NewJob j;
    j.owner = owner;
    j.kind = "noop";
    j.spec.mutable_noop()->set_steps(1);
    j.spec.set_priority(priority);
    j.spec.set_max_attempts(2);
    j.spec.set_idempotency_key(key);
    return j;
  }
  std::string Submit(NewJob j) {
    auto r = store_->SubmitJobSync(std::move(j));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->job.id() : "";
  }
  std::string ClaimId() {
    auto c = store_->ClaimNext();
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() && c->has_value() ? (*c)->id() : "";
  }

  fs::path dir_;
  std::unique_ptr<Store> store_;
  std::mutex mu_;
  std::vector<loupe::v1::JobEvent> published_;
  std::atomic<bool> slow_progress_{false};
};

TEST_F(StoreTest, NewDatabaseIsAtLatestSchema) {
  auto db = Db::Open((dir_ / "loupe.db").string());
  ASSERT_TRUE(db.ok());
  auto v = SchemaVersion(**db);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, LatestSchemaVersion());
}

TEST_F(StoreTest, MigrationIsIdempotentAndRefusesNewerSchema) {
  auto db = Db::Open((dir_ / "loupe.db").string());
  ASSERT_TRUE(db.ok());
  EXPECT_TRUE(Migrate(**db).ok());
  ASSERT_TRUE((*db)->Exec("PRAGMA user_version = 999").ok());
  absl::Status s = Migrate(**db);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("newer"), std::string::npos);
}

TEST_F(StoreTest, SubmitIsVisibleAfterReopen) {
  std::string id = Submit(Job("alice"));
  ASSERT_TRUE(LooksLikeJobId(id));
  Reopen();
  auto j = store_->GetJob(id);
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ(j->owner(), "alice");
  EXPECT_EQ(j->state(), loupe::v1::QUEUED);
  EXPECT_EQ(j->spec().noop().steps(), 1);
  EXPECT_EQ(j->attempt(), 0);
}

TEST_F(StoreTest, IdempotencyKeyReturnsFirstJobPerUser) {
  auto a = store_->SubmitJobSync(Job("alice", 0, "k1"));
  auto b = store_->SubmitJobSync(Job("alice", 5, "k1"));
  auto c = store_->SubmitJobSync(Job("bob", 0, "k1"));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_FALSE(a->existing);
  EXPECT_TRUE(b->existing);
  EXPECT_EQ(a->job.id(), b->job.id());
  EXPECT_EQ(b->job.spec().priority(), 0);  // the first job, not the second spec
  EXPECT_NE(a->job.id(), c->job.id());
}

TEST_F(StoreTest, ConcurrentSubmitsWithSameKeyMakeOneJob) {
  std::vector<std::thread> threads;
  std::mutex mu;
  std::set<std::string> ids;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      auto r = store_->SubmitJobSync(Job("alice", 0, "same"));
      ASSERT_TRUE(r.ok());
      std::lock_guard<std::mutex> l(mu);
      ids.insert(r->job.id());
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ids.size(), 1u);
}

TEST_F(StoreTest, ClaimsByPriorityThenSubmissionOrder) {
  std::string low = Submit(Job("a", 0));
  std::string high1 = Submit(Job("a", 5));
  std::string high2 = Submit(Job("a", 5));
  std::string mid = Submit(Job("a", 1));
  EXPECT_EQ(ClaimId(), high1);
  EXPECT_EQ(ClaimId(), high2);
  EXPECT_EQ(ClaimId(), mid);
  EXPECT_EQ(ClaimId(), low);
  EXPECT_EQ(ClaimId(), "");
}

TEST_F(StoreTest, ConcurrentClaimsNeverShareAJob) {
  for (int i = 0; i < 50; ++i) Submit(Job("a"));
  std::mutex mu;
  std::vector<std::string> claimed;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      while (true) {
        auto c = store_->ClaimNext();
        ASSERT_TRUE(c.ok());
        if (!c->has_value()) return;
        std::lock_guard<std::mutex> l(mu);
        claimed.push_back((*c)->id());
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> unique(claimed.begin(), claimed.end());
  EXPECT_EQ(claimed.size(), 50u);
  EXPECT_EQ(unique.size(), 50u);
}

TEST_F(StoreTest, ClaimStartsNextAttemptAndFinishFences) {
  std::string id = Submit(Job("a"));
  auto c = store_->ClaimNext();
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->attempt(), 1);
  EXPECT_EQ((*c)->state(), loupe::v1::RUNNING);
  AttemptOutcome ok;
  ok.state = loupe::v1::SUCCEEDED;
  ok.metrics["x"] = 1.5;
  // A stale worker of another attempt is refused.
  EXPECT_EQ(store_->FinishAttempt(id, 2, ok).status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto done = store_->FinishAttempt(id, 1, ok);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), loupe::v1::SUCCEEDED);
  // Finishing twice is refused too.
  EXPECT_FALSE(store_->FinishAttempt(id, 1, ok).ok());
  auto r = store_->GetResult(id);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->metrics().at("x"), 1.5);
}

TEST_F(StoreTest, RetryRequeuesAsNextAttempt) {
  std::string id = Submit(Job("a"));
  ASSERT_EQ(ClaimId(), id);
  AttemptOutcome retry;
  retry.state = loupe::v1::QUEUED;
  retry.error = "boom";
  ASSERT_TRUE(store_->FinishAttempt(id, 1, retry).ok());
  auto c = store_->ClaimNext();
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->attempt(), 2);
}

TEST_F(StoreTest, RecoveryRequeuesFailsOrCancelsRunningJobs) {
  NewJob once = Job("a");
  once.spec.set_max_attempts(1);
  std::string retried = Submit(Job("a"));  // max_attempts 2
  std::string exhausted = Submit(once);
  std::string cancelled = Submit(Job("a"));
  ASSERT_EQ(ClaimId(), retried);
  ASSERT_EQ(ClaimId(), exhausted);
  ASSERT_EQ(ClaimId(), cancelled);
  auto c = store_->CancelJob(cancelled);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->was_running);
  // As after kill -9: a new process opens the same database.
  Reopen();
  auto report = store_->RecoverInterrupted();
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->requeued, 1);
  EXPECT_EQ(report->failed, 1);
  EXPECT_EQ(report->cancelled, 1);
  EXPECT_EQ(store_->GetJob(retried)->state(), loupe::v1::QUEUED);
  EXPECT_EQ(store_->GetJob(exhausted)->state(), loupe::v1::FAILED);
  EXPECT_EQ(store_->GetJob(cancelled)->state(), loupe::v1::CANCELLED);
  auto again = store_->ClaimNext();
  ASSERT_TRUE(again.ok() && again->has_value());
  EXPECT_EQ((*again)->id(), retried);
  EXPECT_EQ((*again)->attempt(), 2);
}

TEST_F(StoreTest, EventsHaveGaplessSequenceNumbersAcrossRestarts) {
  std::string id = Submit(Job("a"));
  ASSERT_EQ(ClaimId(), id);
  std::vector<loupe::v1::JobEvent> evs(3);
  for (int i = 0; i < 3; ++i) evs[i].mutable_progress()->set_step(i + 1);
  store_->AppendEvents(id, 1, evs);
  ASSERT_TRUE(store_->Flush().ok());
  Reopen();
  ASSERT_TRUE(store_->RecoverInterrupted().ok());
  auto all = store_->ReadEvents(id, 0, 100);
  ASSERT_TRUE(all.ok());
  // submitted, running, 3 x progress, requeued
  ASSERT_EQ(all->size(), 6u);
  for (size_t i = 0; i < all->size(); ++i) EXPECT_EQ((*all)[i].seq(), static_cast<int64_t>(i + 1));
  EXPECT_EQ((*all)[5].state().state(), loupe::v1::QUEUED);
  auto tail = store_->ReadEvents(id, 4, 100);
  ASSERT_TRUE(tail.ok());
  ASSERT_EQ(tail->size(), 2u);
  EXPECT_EQ((*tail)[0].seq(), 5);
  EXPECT_EQ(store_->GetJob(id)->progress_step(), 3);
}

TEST_F(StoreTest, FirstEventComesFromTheJobRowAsPublished) {
  std::string id = Submit(Job("a"));
  ASSERT_TRUE(store_->Flush().ok());
  loupe::v1::JobEvent published;
  {
    std::lock_guard<std::mutex> l(mu_);
    ASSERT_FALSE(published_.empty());
    published = published_.front();
  }
  EXPECT_EQ(published.seq(), 1);
  auto first = store_->ReadEvents(id, 0, 1);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->size(), 1u);
  EXPECT_EQ((*first)[0].SerializeAsString(), published.SerializeAsString());
  EXPECT_EQ((*first)[0].state().message(), "submitted");
  EXPECT_EQ((*first)[0].time().seconds(), store_->GetJob(id)->created_at().seconds());
  EXPECT_TRUE(store_->ReadEvents(id, 1, 10)->empty());
  EXPECT_TRUE(store_->ReadEvents(id, 0, 0)->empty());
  EXPECT_TRUE(store_->ReadEvents("0123456789ab", 0, 10)->empty());
}

TEST_F(StoreTest, StoredFirstEventOfAnOlderDatabaseIsReadOnce) {
  std::string id = Submit(Job("a"));
  ASSERT_TRUE(store_->Flush().ok());
  // Servers before the implied first event stored it as a row.
  loupe::v1::JobEvent old = (*store_->ReadEvents(id, 0, 1))[0];
  old.mutable_state()->set_message("stored");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "loupe.db").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "INSERT INTO events(job_id, seq, event) VALUES (?, 1, ?)", -1,
                               &st, nullptr),
            SQLITE_OK);
  const std::string blob = old.SerializeAsString();
  sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_blob(st, 2, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
  ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
  sqlite3_finalize(st);
  sqlite3_close(db);
  auto all = store_->ReadEvents(id, 0, 10);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].state().message(), "stored");
}

TEST_F(StoreTest, AFailedWriteUndoesOnlyItself) {
  ASSERT_TRUE(store_->TEST_Write("CREATE TABLE t(v INTEGER)", false).ok());
  // A lone write that fails commits nothing.
  EXPECT_TRUE(absl::IsAborted(store_->TEST_Write("INSERT INTO t VALUES (-1)", true)));
  // Concurrent writes share transactions; the failing ones must not take
  // their neighbours with them, nor leave anything behind.
  std::vector<std::thread> threads;
  for (int th = 0; th < 8; ++th) {
    threads.emplace_back([this, th] {
      for (int i = 0; i < 50; ++i) {
        const int v = th * 1000 + i;
        const bool fail = v % 3 == 0;
        absl::Status s = store_->TEST_Write(absl::StrCat("INSERT INTO t VALUES (", v, ")"), fail);
        EXPECT_EQ(s.ok(), !fail) << s;
      }
    });
  }
  for (auto& t : threads) t.join();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "loupe.db").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT v FROM t", -1, &st, nullptr), SQLITE_OK);
  std::set<int> seen;
  while (sqlite3_step(st) == SQLITE_ROW) seen.insert(sqlite3_column_int(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
  std::set<int> want;
  for (int th = 0; th < 8; ++th) {
    for (int i = 0; i < 50; ++i) {
      if ((th * 1000 + i) % 3 != 0) want.insert(th * 1000 + i);
    }
  }
  EXPECT_EQ(seen, want);
}

TEST_F(StoreTest, ListenerSeesCommittedEventsInOrder) {
  std::string id = Submit(Job("a"));
  ASSERT_TRUE(store_->Flush().ok());
  std::lock_guard<std::mutex> l(mu_);
  ASSERT_EQ(published_.size(), 1u);
  EXPECT_EQ(published_[0].job_id(), id);
  EXPECT_EQ(published_[0].state().state(), loupe::v1::QUEUED);
}

TEST_F(StoreTest, DependenciesGateClaimsAndFailuresCascade) {
  std::string parent = Submit(Job("a"));
  NewJob child = Job("a", 10);
  child.depends_on = {parent};
  std::string child_id = Submit(child);
  NewJob grandchild = Job("a", 10);
  grandchild.depends_on = {child_id};
  std::string grandchild_id = Submit(grandchild);
  // The children have higher priority but must wait.
  EXPECT_EQ(ClaimId(), parent);
  EXPECT_EQ(ClaimId(), "");
  AttemptOutcome failed;
  failed.state = loupe::v1::FAILED;
  failed.error = "bad";
  ASSERT_TRUE(store_->FinishAttempt(parent, 1, failed).ok());
  auto c = store_->GetJob(child_id);
  auto g = store_->GetJob(grandchild_id);
  EXPECT_EQ(c->state(), loupe::v1::FAILED);
  EXPECT_NE(c->error().find(parent), std::string::npos);
  EXPECT_EQ(g->state(), loupe::v1::FAILED);
  EXPECT_NE(g->error().find(child_id), std::string::npos);
}

TEST_F(StoreTest, DependencySuccessReleasesChild) {
  std::string parent = Submit(Job("a"));
  NewJob child = Job("a");
  child.depends_on = {parent};
  std::string child_id = Submit(child);
  EXPECT_EQ(ClaimId(), parent);
  AttemptOutcome ok;
  ok.state = loupe::v1::SUCCEEDED;
  ASSERT_TRUE(store_->FinishAttempt(parent, 1, ok).ok());
  EXPECT_EQ(ClaimId(), child_id);
  EXPECT_EQ(store_->GetJob(child_id)->depends_on(0), parent);
}

TEST_F(StoreTest, CancelQueuedJobEndsIt) {
  std::string id = Submit(Job("a"));
  auto c = store_->CancelJob(id);
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->was_running);
  EXPECT_EQ(c->job.state(), loupe::v1::CANCELLED);
  EXPECT_EQ(ClaimId(), "");
}

TEST_F(StoreTest, ListFiltersAndPages) {
  for (int i = 0; i < 5; ++i) Submit(Job("alice"));
  NewJob labelled = Job("bob");
  (*labelled.spec.mutable_labels())["exp"] = "one";
  std::string bob = Submit(labelled);
  JobFilter f;
  f.owner = "alice";
  f.limit = 2;
  std::vector<std::string> seen;
  while (true) {
    auto page = store_->ListJobs(f);
    ASSERT_TRUE(page.ok()) << page.status();
    for (auto& j : page->jobs) seen.push_back(j.id());
    if (page->next_before_seq == 0) break;
    f.before_seq = page->next_before_seq;
  }
  EXPECT_EQ(seen.size(), 5u);
  JobFilter lf;
  lf.label_key = "exp";
  lf.label_value = "one";
  auto lp = store_->ListJobs(lf);
  ASSERT_TRUE(lp.ok());
  ASSERT_EQ(lp->jobs.size(), 1u);
  EXPECT_EQ(lp->jobs[0].id(), bob);
  JobFilter newest;
  auto all = store_->ListJobs(newest);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->jobs.front().id(), bob);  // newest first
}

TEST_F(StoreTest, TokensAreHashedAndMapToUsers) {
  auto t = store_->CreateToken("carol", false);
  ASSERT_TRUE(t.ok());
  auto u = store_->UserForTokenHash(Sha256::Of(*t));
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->name, "carol");
  EXPECT_FALSE(u->admin);
  EXPECT_TRUE(absl::IsNotFound(store_->UserForTokenHash(Sha256::Of("nope")).status()));
  // The token itself appears nowhere in the database file.
  ASSERT_TRUE(store_->Flush().ok());
  auto db = Db::Open((dir_ / "loupe.db").string());
  auto st = (*db)->Prepare("SELECT count(*) FROM tokens WHERE hash = ?");
  st->Bind(1, *t);
  ASSERT_TRUE(*st->Step());
  EXPECT_EQ(st->Int(0), 0);
}

TEST_F(StoreTest, DatasetsAreDeduplicatedByContent) {
  std::string sha(64, 'a');
  auto a = store_->AddDataset("alice", "x.csv", sha, 10, "text/csv");
  auto b = store_->AddDataset("bob", "y.csv", sha, 10, "text/csv");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_FALSE(a->deduplicated());
  EXPECT_TRUE(b->deduplicated());
  EXPECT_EQ(a->id(), b->id());
  EXPECT_TRUE(store_->GetDataset(a->id()).ok());
}

TEST_F(StoreTest, GroupCommitKeepsEveryConcurrentSubmit) {
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        if (store_->SubmitJobSync(Job("load")).ok()) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 800);
  Reopen();
  JobFilter f;
  f.owner = "load";
  f.limit = 1000;
  EXPECT_EQ(store_->ListJobs(f)->jobs.size(), 800u);
}

// Writes commit on the writer thread or, when nothing else is committing, on
// the caller's thread; either way the listener must see commits in order.
// Each round, a progress event commits through the writer (fire and forget)
// and is published slowly; the attempt's end then commits on this thread
// while that publication may still be under way: it must wait its turn.
TEST_F(StoreTest, CallerAndWriterCommitsPublishInCommitOrder) {
  NewJob retried = Job("order");
  retried.spec.set_max_attempts(1000);
  const std::string id = Submit(std::move(retried));
  slow_progress_ = true;
  constexpr int kRounds = 30;
  for (int attempt = 1; attempt <= kRounds; ++attempt) {
    ASSERT_EQ(ClaimId(), id);
    std::vector<loupe::v1::JobEvent> evs(1);
    evs[0].mutable_progress()->set_step(attempt);
    store_->AppendEvents(id, attempt, evs);
    const int64_t progress_seq = 1 + (attempt - 1) * 3 + 2;
    while (true) {  // committed, though perhaps not yet published
      auto seen = store_->ReadEvents(id, progress_seq - 1, 1);
      ASSERT_TRUE(seen.ok());
      if (!seen->empty()) break;
    }
    AttemptOutcome retry;
    retry.state = loupe::v1::QUEUED;
    retry.error = "again";
    ASSERT_TRUE(store_->FinishAttempt(id, attempt, retry).ok());
  }
  ASSERT_TRUE(store_->Flush().ok());
  std::lock_guard<std::mutex> l(mu_);
  int64_t last = 0;
  for (const auto& e : published_) {
    ASSERT_EQ(e.job_id(), id);
    ASSERT_EQ(e.seq(), last + 1);
    last = e.seq();
  }
  EXPECT_EQ(last, 1 + kRounds * 3);  // queued, then running + progress + queued
}

// A callback may run on the thread that submitted the write; it must be able
// to queue further writes from there without deadlocking.
TEST_F(StoreTest, CallbackMayQueueAnotherWrite) {
  std::promise<std::string> second;
  store_->SubmitJob(Job("chain"), [&](absl::StatusOr<SubmitOutcome> first) {
    ASSERT_TRUE(first.ok());
    store_->SubmitJob(Job("chain"), [&](absl::StatusOr<SubmitOutcome> r) {
      second.set_value(r.ok() ? r->job.id() : "");
    });
  });
  std::future<std::string> f = second.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_TRUE(LooksLikeJobId(f.get()));
}

}  // namespace
}  // namespace loupe::store
