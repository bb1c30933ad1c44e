// upload FILE [--name N].
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/commands.h"
#include "client/exit_codes.h"
#include "client/file_util.h"
#include "client/output.h"

namespace loupe::cli {

namespace fs = std::filesystem;

namespace {

constexpr size_t kUploadChunk = 1 << 20;  // 1 MiB per message

std::string DatasetReference(const std::string& id) {
  return absl::StartsWith(id, "dataset:") ? id : absl::StrCat("dataset:", id);
}

}  // namespace

int RunUpload(Context& ctx, const UploadFlags& flags) {
  std::error_code ec;
  const fs::path path(flags.file);
  if (!fs::is_regular_file(path, ec)) {
    throw CliError(kExitLocalIo, absl::StrCat("cannot upload ", flags.file, ": ",
                                              fs::exists(path, ec) ? "not a regular file"
                                                                   : "no such file"));
  }
  const int64_t size = static_cast<int64_t>(fs::file_size(path, ec));
  if (ec) throw CliError(kExitLocalIo, absl::StrCat("cannot read ", flags.file, ": ", ec.message()));
  auto sha = Sha256File(flags.file);
  if (!sha.ok()) throw CliError(kExitLocalIo, std::string(sha.status().message()));

  loupe::v1::UploadDatasetRequest header_msg;
  auto* header = header_msg.mutable_header();
  header->set_name(flags.name.empty() ? BaseName(flags.file) : flags.name);
  header->set_size(size);
  header->set_sha256(*sha);
  header->set_media_type(GuessMediaType(flags.file));

  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw CliError(kExitLocalIo, absl::StrCat("cannot open ", flags.file, ": ", std::strerror(errno)));
  }

  loupe::v1::Dataset dataset;
  auto call = ctx.NewCall(/*streaming=*/true);
  auto writer = ctx.stub->UploadDataset(call.get(), &dataset);
  bool stream_ok = writer->Write(header_msg);
  bool read_error = false;
  std::vector<char> buf(kUploadChunk);
  int64_t sent = 0;
  while (stream_ok && sent < size) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize n = in.gcount();
    if (n <= 0) {
      read_error = true;  // the file shrank or could not be read
      break;
    }
    loupe::v1::UploadDatasetRequest chunk;
    chunk.set_chunk(buf.data(), static_cast<size_t>(n));
    stream_ok = writer->Write(chunk);
    sent += n;
  }
  if (read_error) {
    call->TryCancel();
    writer->Finish();
    throw CliError(kExitLocalIo, absl::StrCat("cannot read ", flags.file, " (", sent, " of ", size,
                                              " bytes sent; did it change?)"));
  }
  if (stream_ok) writer->WritesDone();
  grpc::Status st = writer->Finish();
  if (!st.ok()) throw RpcError(ctx, st, absl::StrCat("upload ", flags.file));

  if (ctx.json) {
    PrintJsonLine(ctx.Out(), dataset);
    return kExitOk;
  }
  ctx.Out() << "uploaded " << header->name() << " (" << FormatBytes(size) << ") as dataset "
            << dataset.id() << (dataset.deduplicated() ? " (content already stored)" : "") << "\n"
            << "use it as: " << DatasetReference(dataset.id()) << "\n";
  return kExitOk;
}

}  // namespace loupe::cli
