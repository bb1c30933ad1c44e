// Table: a dense numeric data set (features + one target) for gbdt.influence.
//
// Loaded from a CSV with a header (one column is the label; empty cells, "?",
// "NA" and "nan" are missing values) or from LibSVM text ("label idx:val ...",
// indices used as written; absent entries are missing, as XGBoost reads
// them). Missing values are NaN, which XGBoost and Loupe's trees both route
// by the split's default direction.
// A Table is a plain value: copy it freely; not synchronised.
#ifndef LOUPE_WORKERS_GBDT_TABLE_H_
#define LOUPE_WORKERS_GBDT_TABLE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace loupe::gbdt {

struct Table {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> x;       // rows × cols, row-major; NaN = missing
  std::vector<double> y;      // rows
  std::vector<std::string> feature_names;

  const float* row(int64_t i) const { return x.data() + i * cols; }
  // The rows `index` in that order.
  Table Select(const std::vector<int64_t>& index) const;
};

// `field` names the parameter in errors ("data", "test_data").
// Format by content: a first line containing ':' after a number and no
// header-like text is LibSVM; anything else is CSV with a header.
absl::StatusOr<Table> LoadTable(const std::string& path, const std::string& label_column,
                                const std::string& field);
absl::StatusOr<Table> ParseCsv(const std::string& text, const std::string& label_column,
                               const std::string& field);
absl::StatusOr<Table> ParseLibsvm(const std::string& text, const std::string& field);

// Pads or checks the column count so a test table matches the training one
// (LibSVM files only know the largest index they contain).
absl::Status AlignColumns(Table& test, int64_t cols, const std::string& field);

// A seeded random split: the first returned index list trains, the second tests.
std::pair<std::vector<int64_t>, std::vector<int64_t>> SplitRows(int64_t rows, double test_fraction,
                                                                uint64_t seed);

}  // namespace loupe::gbdt

#endif  // LOUPE_WORKERS_GBDT_TABLE_H_
