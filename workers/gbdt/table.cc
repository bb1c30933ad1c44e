#include "workers/gbdt/table.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace loupe::gbdt {
namespace {

absl::Status DataError(const std::string& field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("gbdt.influence parameter '", field, "': ", what));
}

bool IsMissing(absl::string_view cell) {
  const std::string lower = absl::AsciiStrToLower(cell);
  return lower.empty() || lower == "?" || lower == "na" || lower == "nan" || lower == "null";
}

// One CSV line split on commas; double-quoted cells may contain commas.
std::vector<std::string> SplitCsvLine(absl::string_view line) {
  std::vector<std::string> cells(1);
  bool quoted = false;
  for (char ch : line) {
    if (ch == '"') {
      quoted = !quoted;
    } else if (ch == ',' && !quoted) {
      cells.emplace_back();
    } else {
      cells.back().push_back(ch);
    }
  }
  for (auto& c : cells) c = std::string(absl::StripAsciiWhitespace(c));
  return cells;
}

}  // namespace

Table Table::Select(const std::vector<int64_t>& index) const {
  Table t;
  t.rows = static_cast<int64_t>(index.size());
  t.cols = cols;
  t.feature_names = feature_names;
  t.x.resize(static_cast<size_t>(t.rows * cols));
  t.y.resize(index.size());
  for (size_t r = 0; r < index.size(); ++r) {
    std::copy(row(index[r]), row(index[r]) + cols, t.x.begin() + static_cast<int64_t>(r) * cols);
    t.y[r] = y[static_cast<size_t>(index[r])];
  }
  return t;
}

absl::StatusOr<Table> ParseCsv(const std::string& text, const std::string& label_column,
                               const std::string& field) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  while (!lines.empty() && absl::StripAsciiWhitespace(lines.back()).empty()) lines.pop_back();
  if (lines.empty()) return DataError(field, "the CSV file is empty");
  const std::vector<std::string> header = SplitCsvLine(absl::StripTrailingAsciiWhitespace(lines[0]));
  int64_t label_at = -1;
  for (size_t c = 0; c < header.size(); ++c) {
    if (header[c] == label_column) label_at = static_cast<int64_t>(c);
  }
  if (label_at < 0) {
    return DataError("label", absl::StrCat("no column named '", label_column, "' in the header of '", field, "'; columns: ",
                                         absl::StrJoin(header, ", ")));
  }
  Table t;
  t.cols = static_cast<int64_t>(header.size()) - 1;
  if (t.cols < 1) return DataError(field, "the CSV has no feature column besides the label");
  for (size_t c = 0; c < header.size(); ++c) {
    if (static_cast<int64_t>(c) != label_at) t.feature_names.push_back(header[c]);
  }
  for (size_t l = 1; l < lines.size(); ++l) {
    absl::string_view line = absl::StripTrailingAsciiWhitespace(lines[l]);
    if (line.empty()) continue;
    const std::vector<std::string> cells = SplitCsvLine(line);
    if (cells.size() != header.size()) {
      return DataError(field, absl::StrCat("CSV line ", l + 1, " has ", cells.size(), " cells, the header has ",
                                           header.size()));
    }
    for (size_t c = 0; c < cells.size(); ++c) {
      double v = std::numeric_limits<double>::quiet_NaN();
      if (!IsMissing(cells[c]) && !absl::SimpleAtod(cells[c], &v)) {
        return DataError(field, absl::StrCat("CSV line ", l + 1, ", column '", header[c], "': '", cells[c],
                                             "' is not a number (encode categories as numbers first)"));
      }
      if (static_cast<int64_t>(c) == label_at) {
        if (!std::isfinite(v)) {
          return DataError(field, absl::StrCat("CSV line ", l + 1, ": the label '", label_column, "' is missing"));
        }
        t.y.push_back(v);
      } else {
        t.x.push_back(static_cast<float>(v));
      }
    }
    ++t.rows;
  }
  if (t.rows == 0) return DataError(field, "the CSV has a header but no rows");
  return t;
}

absl::StatusOr<Table> ParseLibsvm(const std::string& text, const std::string& field) {
  struct Entry { int64_t col; float value; };
  std::vector<std::vector<Entry>> rows;
  std::vector<double> labels;
  int64_t max_col = -1;
  int64_t line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (const size_t hash = line.find('#'); hash != absl::string_view::npos) line = line.substr(0, hash);
    if (line.empty()) continue;
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
    double label;
    if (!absl::SimpleAtod(parts[0], &label)) {
      return DataError(field, absl::StrCat("LibSVM line ", line_no, ": label '", parts[0], "' is not a number"));
    }
    std::vector<Entry> entries;
    for (size_t k = 1; k < parts.size(); ++k) {
      std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(parts[k], absl::MaxSplits(':', 1));
      int64_t col;
      double value;
      if (!absl::SimpleAtoi(kv.first, &col) || col < 0 || !absl::SimpleAtod(kv.second, &value)) {
        return DataError(field, absl::StrCat("LibSVM line ", line_no, ": '", parts[k], "' is not index:value"));
      }
      if (col > 10'000'000) return DataError(field, absl::StrCat("LibSVM line ", line_no, ": index ", col, " is too large"));
      max_col = std::max(max_col, col);
      entries.push_back({col, static_cast<float>(value)});
    }
    rows.push_back(std::move(entries));
    labels.push_back(label);
  }
  if (rows.empty()) return DataError(field, "the LibSVM file has no rows");
  Table t;
  t.rows = static_cast<int64_t>(rows.size());
  t.cols = max_col + 1;
  if (t.cols < 1) return DataError(field, "the LibSVM file has no features");
  // Absent entries of a sparse row are missing values, as XGBoost's own
  // LibSVM reader treats them (so a model trained by XGBoost on the file
  // routes them the same way here).
  t.x.assign(static_cast<size_t>(t.rows * t.cols), std::numeric_limits<float>::quiet_NaN());
  for (int64_t r = 0; r < t.rows; ++r) {
    for (const Entry& e : rows[static_cast<size_t>(r)]) t.x[static_cast<size_t>(r * t.cols + e.col)] = e.value;
  }
  t.y = std::move(labels);
  for (int64_t c = 0; c < t.cols; ++c) t.feature_names.push_back(absl::StrCat("f", c));
  return t;
}

absl::StatusOr<Table> LoadTable(const std::string& path, const std::string& label_column,
                                const std::string& field) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("gbdt.influence parameter '", field, "': cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  // LibSVM: the first token of the first line is a number and the second
  // looks like index:value.
  absl::string_view first = absl::string_view(text).substr(0, text.find('\n'));
  std::vector<absl::string_view> tokens = absl::StrSplit(first, ' ', absl::SkipEmpty());
  double unused;
  if (tokens.size() >= 2 && absl::SimpleAtod(tokens[0], &unused) && tokens[1].find(':') != absl::string_view::npos &&
      first.find(',') == absl::string_view::npos) {
    return ParseLibsvm(text, field);
  }
  return ParseCsv(text, label_column, field);
}

absl::Status AlignColumns(Table& test, int64_t cols, const std::string& field) {
  if (test.cols == cols) return absl::OkStatus();
  if (test.cols > cols) {
    return DataError(field, absl::StrCat("has ", test.cols, " feature columns, the training data ", cols));
  }
  Table padded = test;
  padded.cols = cols;
  padded.x.assign(static_cast<size_t>(test.rows * cols), std::numeric_limits<float>::quiet_NaN());
  for (int64_t r = 0; r < test.rows; ++r) std::copy(test.row(r), test.row(r) + test.cols, padded.x.begin() + r * cols);
  for (int64_t c = test.cols; c < cols; ++c) padded.feature_names.push_back(absl::StrCat("f", c));
  test = std::move(padded);
  return absl::OkStatus();
}

std::pair<std::vector<int64_t>, std::vector<int64_t>> SplitRows(int64_t rows, double test_fraction,
                                                                uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(rows));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  const int64_t n_test = std::clamp<int64_t>(static_cast<int64_t>(std::llround(test_fraction * rows)), 1, rows - 1);
  std::vector<int64_t> test(order.begin(), order.begin() + n_test);
  std::vector<int64_t> train(order.begin() + n_test, order.end());
  std::sort(test.begin(), test.end());
  std::sort(train.begin(), train.end());
  return {train, test};
}

}  // namespace loupe::gbdt
