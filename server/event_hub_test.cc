#include "server/event_hub.h"

#include "gtest/gtest.h"

namespace loupe {
namespace {

loupe::v1::JobEvent Ev(const std::string& job, int64_t seq) {
  loupe::v1::JobEvent e;
  e.set_job_id(job);
  e.set_seq(seq);
  return e;
}

TEST(EventHubTest, DeliversOnlyToSubscribersOfTheJob) {
  EventHub hub;
  std::vector<int64_t> a, b;
  uint64_t sa = hub.Subscribe("a", [&](const loupe::v1::JobEvent& e) { a.push_back(e.seq()); });
  hub.Subscribe("b", [&](const loupe::v1::JobEvent& e) { b.push_back(e.seq()); });
  hub.Publish({Ev("a", 1), Ev("b", 1), Ev("a", 2)});
  EXPECT_EQ(a, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(b, (std::vector<int64_t>{1}));
  hub.Unsubscribe(sa);
  hub.Publish({Ev("a", 3)});
  EXPECT_EQ(a.size(), 2u);
  hub.Unsubscribe(sa);  // twice is harmless
}

}  // namespace
}  // namespace loupe
