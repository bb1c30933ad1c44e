// watch ID: follows a job's events to its end, reconnecting after
// UNAVAILABLE with the last seen seq.
#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/commands.h"
#include "client/exit_codes.h"
#include "client/output.h"
#include "client/progress_bar.h"

namespace loupe::cli {

using loupe::v1::JobEvent;
using loupe::v1::JobState;

namespace {

constexpr char kClearLine[] = "\r\x1b[K";

class Watcher {
 public:
  Watcher(Context& ctx, std::string job_id) : ctx_(ctx), id_(std::move(job_id)) {}

  int Run() {
    bool ever_received = false;
    int retries_left = ctx_.max_reconnects;
    absl::Duration backoff = ctx_.reconnect_backoff;
    while (true) {
      loupe::v1::WatchJobRequest req;
      req.set_id(id_);
      req.set_after_seq(last_seq_);
      auto call = ctx_.NewCall(/*streaming=*/true);
      auto reader = ctx_.stub->WatchJob(call.get(), req);
      JobEvent ev;
      bool received = false;
      while (reader->Read(&ev)) {
        received = true;
        if (ev.seq() > 0 && ev.seq() <= last_seq_) continue;  // already seen
        last_seq_ = std::max(last_seq_, ev.seq());
        Handle(ev);
      }
      grpc::Status st = reader->Finish();
      if (received) {
        ever_received = true;
        retries_left = ctx_.max_reconnects;
        backoff = ctx_.reconnect_backoff;
      }
      // The final state arrived: how the stream ended no longer matters.
      if (final_) break;
      if (st.ok()) {
        // The stream ended before a final state: ask where the job is.
        loupe::v1::Job job = GetJob();
        if (IsFinalState(job.state())) {
          state_ = job.state();
          final_ = true;
          break;
        }
        st = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the event stream ended before the job");
      }
      // Only a broken stream is retried (UNAVAILABLE, or CANCELLED by a
      // server shutting down), and only once it has worked: a server that
      // cannot be reached at all fails at once.
      if (!IsRetryableStreamStatus(st) || !ever_received) {
        ClearBar();
        throw RpcError(ctx_, st, absl::StrCat("watch job ", id_));
      }
      if (retries_left <= 0) {
        ClearBar();
        throw RpcError(ctx_, st, absl::StrCat("watch job ", id_, " (gave up reconnecting)"));
      }
      --retries_left;
      ClearBar();
      ctx_.Err() << "loupe: lost the event stream (" << st.error_message() << "); reconnecting in "
                 << absl::FormatDuration(backoff) << " after event " << last_seq_ << "\n";
      ctx_.Err().flush();
      ctx_.sleep(backoff);
      backoff = std::min(backoff * 2, absl::Seconds(10));
    }
    return Summarize();
  }

 private:
  loupe::v1::Job GetJob() {
    loupe::v1::GetJobRequest req;
    req.set_id(id_);
    loupe::v1::Job job;
    auto call = ctx_.NewCall();
    grpc::Status st = ctx_.stub->GetJob(call.get(), req, &job);
    if (!st.ok()) throw RpcError(ctx_, st, absl::StrCat("get job ", id_));
    return job;
  }

  absl::Time EventTime(const JobEvent& ev) const {
    return ev.has_time() ? FromProtoTimestamp(ev.time()) : ctx_.now();
  }

  void Handle(const JobEvent& ev) {
    switch (ev.event_case()) {
      case JobEvent::kState: {
        const bool new_attempt = ev.attempt() != attempt_ && ev.attempt() > 0;
        state_ = ev.state().state();
        final_ = IsFinalState(state_);
        if (new_attempt) {
          attempt_ = ev.attempt();
          step_ = total_ = 0;
          metrics_.clear();
          have_progress_ = false;
        }
        if (!ctx_.json) {
          ClearBar();
          std::string line = absl::StrCat("state: ", StateName(state_));
          if (ev.attempt() > 0) absl::StrAppend(&line, " (attempt ", ev.attempt(), ")");
          if (!ev.state().message().empty()) absl::StrAppend(&line, ": ", ev.state().message());
          Print(line);
        }
        break;
      }
      case JobEvent::kProgress:
        step_ = ev.progress().step();
        if (ev.progress().total() > 0) total_ = ev.progress().total();
        eta_.Observe(EventTime(ev), step_, ev.attempt());
        have_progress_ = true;
        ShowProgress();
        break;
      case JobEvent::kMetrics:
        for (const auto& [k, v] : ev.metrics().values()) metrics_[k] = v;
        if (ev.metrics().step() > step_) step_ = ev.metrics().step();
        have_progress_ = true;
        ShowProgress();
        break;
      case JobEvent::kLog:
        if (!ctx_.json) {
          const bool redraw = bar_visible_;
          ClearBar();
          Print(ev.log().text());
          if (redraw) ShowProgress();
        }
        break;
      default:
        break;
    }
    if (ctx_.json) PrintJsonLine(ctx_.Out(), ev);
  }

  std::string BarText() const {
    return RenderProgressBar(step_, total_, metrics_, eta_.Eta(total_), ctx_.term_width);
  }

  void ShowProgress() {
    if (ctx_.json || !have_progress_) return;
    if (ctx_.tty) {
      ctx_.Out() << kClearLine << BarText();
      ctx_.Out().flush();
      bar_visible_ = true;
      return;
    }
    const absl::Time now = ctx_.now();
    if (now - last_plain_ >= ctx_.plain_progress_interval) {
      Print(BarText());
      last_plain_ = now;
    }
  }

  void ClearBar() {
    if (!bar_visible_) return;
    ctx_.Out() << kClearLine;
    bar_visible_ = false;
  }

  void Print(const std::string& line) {
    ctx_.Out() << line << "\n";
    ctx_.Out().flush();
  }

  int Summarize() {
    ClearBar();
    if (ctx_.json) return ExitCodeForJobState(state_);
    JobState state = state_;
    try {
      loupe::v1::JobResult r = FetchResult(ctx_, id_);
      if (IsFinalState(r.state())) state = r.state();
      std::ostream& out = ctx_.Out();
      out << "job " << id_ << " " << StateName(state);
      if (r.attempt() > 0) out << " (attempt " << r.attempt() << ")";
      if (!r.error().empty()) out << ": " << r.error();
      out << "\n";
      if (r.metrics_size() > 0) {
        out << "metrics:\n"
            << FormatMetricsBlock(std::map<std::string, double>(r.metrics().begin(), r.metrics().end()));
      }
      if (r.artifacts_size() > 0) {
        std::vector<std::string> names;
        for (const auto& a : r.artifacts()) names.push_back(a.name());
        out << "artifacts: " << absl::StrJoin(names, ", ") << "\n";
      }
      out.flush();
    } catch (const CliError& e) {
      ctx_.Out() << "job " << id_ << " " << StateName(state) << "\n";
      ctx_.Err() << "loupe: warning: " << e.what() << "\n";
    }
    return ExitCodeForJobState(state);
  }

  Context& ctx_;
  const std::string id_;
  int64_t last_seq_ = 0;
  JobState state_ = loupe::v1::JOB_STATE_UNSPECIFIED;
  bool final_ = false;
  int attempt_ = 0;
  int64_t step_ = 0, total_ = 0;
  std::map<std::string, double> metrics_;
  bool have_progress_ = false;
  EtaEstimator eta_;
  bool bar_visible_ = false;
  absl::Time last_plain_ = absl::InfinitePast();
};

}  // namespace

int RunWatch(Context& ctx, const std::string& job_id) {
  return Watcher(ctx, job_id).Run();
}

}  // namespace loupe::cli
