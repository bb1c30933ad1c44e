#include "client/cli.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/commands.h"
#include "client/context.h"
#include "client/exit_codes.h"
#include "workers/runtime/params.h"

namespace loupe::cli {

Environment ProcessEnvironment() {
  Environment env;
  env.getenv = [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
  env.stdout_is_tty = isatty(STDOUT_FILENO) == 1;
  env.terminal_width = 80;
  struct winsize ws {};
  int cols = 0;
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
    env.terminal_width = ws.ws_col;
  } else if (const char* c = std::getenv("COLUMNS"); c && absl::SimpleAtoi(c, &cols) && cols > 0) {
    env.terminal_width = cols;
  }
  env.make_stub = [](const std::string& address) {
    return std::unique_ptr<loupe::v1::JobService::StubInterface>(
        loupe::v1::JobService::NewStub(MakeChannel(address)));
  };
  return env;
}

int RunCli(int argc, const char* const* argv, const Environment& env) {
  CLI::App app{"loupe: submit, follow and fetch Loupe jobs", "loupe"};
  app.require_subcommand(1);
  app.fallthrough();  // global flags may also follow the command
  app.get_formatter()->column_width(34);
  app.footer(absl::StrCat("Environment: ", kServerEnv, " (default ", DefaultServerAddress(), "), ",
                          kTokenEnv, ".\nExit codes: 0 ok/SUCCEEDED, 1 FAILED, 2 usage, 3 CANCELLED, "
                          "4 unreachable, 5 auth, 6 not found, 7 invalid argument, 8 server error, "
                          "9 local I/O. See docs/cli.md."));

  std::string server, token;
  bool json = false;
  app.add_option("--server", server,
                 absl::StrCat("Server address host[:port] (env ", kServerEnv, ", default ",
                              DefaultServerAddress(), ")"));
  app.add_option("--token", token, absl::StrCat("Bearer token (env ", kTokenEnv, ")"));
  app.add_flag("--json", json, "Machine-readable output: one JSON document per line");

  // submit
  SubmitFlags submit;
  int priority = 0, max_attempts = 0;
  std::string idempotency_key;
  auto* sub_submit = app.add_subcommand("submit", "Submit a job");
  sub_submit->add_option("KIND", submit.kind, "Job kind (see 'loupe kinds'); optional with -f");
  sub_submit->add_option("-p,--param", submit.params, "Parameter key=value (repeatable)")
      ->allow_extra_args(false);
  sub_submit->add_option("-f,--file", submit.spec_file,
                         "JSON JobSpec file ('-' reads stdin); flags override it");
  auto* opt_priority = sub_submit->add_option("--priority", priority, "Higher runs first");
  auto* opt_attempts = sub_submit->add_option("--max-attempts", max_attempts,
                                              "Attempts before the job fails for good");
  sub_submit->add_option("--time-limit", submit.time_limit,
                         "Limit per attempt: 45, 90s, 10m, 1h30m, 2d");
  auto* opt_idem = sub_submit->add_option("--idempotency-key", idempotency_key,
                                          "Resubmitting with the same key returns the first job");
  sub_submit->add_option("-l,--label", submit.labels, "Label key=value (repeatable)")
      ->allow_extra_args(false);
  sub_submit->add_flag("-w,--watch", submit.watch, "Watch the job until it ends");

  std::string job_id;
  auto* sub_get = app.add_subcommand("get", "Show a job");
  sub_get->add_option("ID", job_id, "Job id")->required();

  ListFlags list;
  auto* sub_list = app.add_subcommand("list", "List jobs (newest first)");
  sub_list->add_option("--state", list.state, "queued, running, succeeded, failed, cancelled");
  sub_list->add_option("--kind", list.kind, "Only this kind");
  sub_list->add_option("--owner", list.owner, "Only this user's jobs ('*': everyone's; admins)");
  sub_list->add_option("--label", list.label, "key or key=value");
  sub_list->add_option("-n,--limit", list.limit, "At most this many jobs (default 50)");

  auto* sub_watch = app.add_subcommand("watch", "Follow a job until it ends");
  sub_watch->add_option("ID", job_id, "Job id")->required();

  auto* sub_cancel = app.add_subcommand("cancel", "Cancel a job");
  sub_cancel->add_option("ID", job_id, "Job id")->required();

  auto* sub_result = app.add_subcommand("result", "Show a job's final metrics and artifacts");
  sub_result->add_option("ID", job_id, "Job id")->required();

  auto* sub_artifacts = app.add_subcommand("artifacts", "List a job's artifacts");
  sub_artifacts->add_option("ID", job_id, "Job id")->required();

  DownloadFlags download;
  auto* sub_download = app.add_subcommand("download", "Download an artifact (resumable)");
  sub_download->add_option("ID", download.job_id, "Job id")->required();
  sub_download->add_option("NAME", download.name, "Artifact name")->required();
  sub_download->add_option("-o,--output", download.output,
                           "Output file or directory (default: the artifact's name)");

  UploadFlags upload;
  auto* sub_upload = app.add_subcommand("upload", "Upload a dataset file");
  sub_upload->add_option("FILE", upload.file, "File to upload")->required();
  sub_upload->add_option("--name", upload.name, "Dataset name (default: the file name)");

  std::string kind;
  auto* sub_kinds = app.add_subcommand("kinds", "List job kinds, or one kind's parameters");
  sub_kinds->add_option("KIND", kind, "Show this kind's parameters");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) {
      return app.exit(e, *env.out, *env.err);  // --help
    }
    std::string message = e.what();
    if (app.get_subcommands().empty()) {
      // "loupe subimt": name the unknown command instead of CLI11's
      // "A subcommand is required".
      std::vector<std::string> names;
      for (const CLI::App* sub : app.get_subcommands({})) names.push_back(sub->get_name());
      for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--server" || arg == "--token") {
          ++i;  // skip the value
          continue;
        }
        if (arg.empty() || arg[0] == '-') continue;
        std::string hint = loupe::SuggestName(arg, names);
        message = absl::StrCat("unknown command '", arg, "'",
                               hint.empty() ? "" : absl::StrCat("; did you mean '", hint, "'?"));
        break;
      }
    }
    *env.err << "loupe: error: " << message << "\n"
             << "run 'loupe --help' or 'loupe COMMAND --help' for usage\n";
    return kExitUsage;
  }

  if (opt_priority->count()) submit.priority = priority;
  if (opt_attempts->count()) submit.max_attempts = max_attempts;
  if (opt_idem->count()) submit.idempotency_key = idempotency_key;

  ConnectionSettings settings = ResolveConnectionSettings(server, token, env.getenv);
  std::unique_ptr<loupe::v1::JobService::StubInterface> stub = env.make_stub(settings.server);

  Context ctx;
  ctx.stub = stub.get();
  ctx.out = env.out;
  ctx.err = env.err;
  ctx.in = env.in;
  ctx.json = json;
  ctx.server = settings.server;
  ctx.token = settings.token;
  ctx.tty = env.stdout_is_tty && !json;
  ctx.term_width = env.terminal_width;

  return RunGuarded(ctx, [&]() -> int {
    if (*sub_submit) {
      if (submit.kind.empty() && submit.spec_file.empty()) {
        throw CliError(kExitUsage, "submit: give KIND (see 'loupe kinds') or -f spec.json");
      }
      return RunSubmit(ctx, submit);
    }
    if (*sub_get) return RunGet(ctx, job_id);
    if (*sub_list) return RunList(ctx, list);
    if (*sub_watch) return RunWatch(ctx, job_id);
    if (*sub_cancel) return RunCancel(ctx, job_id);
    if (*sub_result) return RunResult(ctx, job_id);
    if (*sub_artifacts) return RunArtifacts(ctx, job_id);
    if (*sub_download) return RunDownload(ctx, download);
    if (*sub_upload) return RunUpload(ctx, upload);
    if (*sub_kinds) return RunKinds(ctx, kind);
    throw CliError(kExitUsage, "no command given");
  });
}

}  // namespace loupe::cli
