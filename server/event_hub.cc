#include "server/event_hub.h"

namespace loupe {

uint64_t EventHub::Subscribe(const std::string& job_id, Callback cb) {
  std::lock_guard<std::mutex> l(mu_);
  uint64_t id = next_id_++;
  by_job_.emplace(job_id, std::make_pair(id, std::move(cb)));
  job_of_[id] = job_id;
  return id;
}

void EventHub::Unsubscribe(uint64_t id) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = job_of_.find(id);
  if (it == job_of_.end()) return;
  auto range = by_job_.equal_range(it->second);
  for (auto s = range.first; s != range.second; ++s) {
    if (s->second.first == id) {
      by_job_.erase(s);
      break;
    }
  }
  job_of_.erase(it);
}

void EventHub::Publish(const std::vector<loupe::v1::JobEvent>& events) {
  std::lock_guard<std::mutex> l(mu_);
  if (by_job_.empty()) return;
  for (const auto& e : events) {
    auto range = by_job_.equal_range(e.job_id());
    for (auto s = range.first; s != range.second; ++s) s->second.second(e);
  }
}

}  // namespace loupe
