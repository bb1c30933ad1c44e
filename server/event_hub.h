// EventHub: fans committed job events out to live watchers.
//
// The store calls Publish on its writer thread after each commit; callbacks
// run there, under the hub's lock, so they must be quick and never block
// (a watcher queues the event and returns). After Unsubscribe returns, the
// callback is never called again, so its owner may be destroyed. Thread-safe.
#ifndef LOUPE_SERVER_EVENT_HUB_H_
#define LOUPE_SERVER_EVENT_HUB_H_

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "loupe/v1/jobs.pb.h"

namespace loupe {

class EventHub {
 public:
  using Callback = std::function<void(const loupe::v1::JobEvent&)>;

  uint64_t Subscribe(const std::string& job_id, Callback cb);
  void Unsubscribe(uint64_t id);
  void Publish(const std::vector<loupe::v1::JobEvent>& events);

 private:
  std::mutex mu_;
  uint64_t next_id_ = 1;                                        // guarded by mu_
  std::multimap<std::string, std::pair<uint64_t, Callback>> by_job_;  // guarded by mu_
  std::map<uint64_t, std::string> job_of_;                      // guarded by mu_
};

}  // namespace loupe

#endif  // LOUPE_SERVER_EVENT_HUB_H_
