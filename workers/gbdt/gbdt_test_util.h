// Helpers shared by gbdt.influence's tests: small synthetic tables and the
// real tables written by scripts/make_tables.py.
#ifndef LOUPE_WORKERS_GBDT_GBDT_TEST_UTIL_H_
#define LOUPE_WORKERS_GBDT_GBDT_TEST_UTIL_H_

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "workers/gbdt/table.h"

namespace loupe::gbdt::testing {

// rows × cols features in [−1, 1] (a few NaN), target by `kind`:
// "regression", "binary" or "multiclass" (3 classes), with label noise.
inline Table Synthetic(int64_t rows, int64_t cols, const std::string& kind, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  std::normal_distribution<double> noise(0, 0.3);
  Table t;
  t.rows = rows;
  t.cols = cols;
  for (int64_t c = 0; c < cols; ++c) t.feature_names.push_back("x" + std::to_string(c));
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t c = 0; c < cols; ++c) t.x.push_back((i * 7 + c) % 23 == 0 ? NAN : u(rng));
    const float* x = t.row(i);
    const double a = std::isnan(x[0]) ? 0.0 : x[0], b = std::isnan(x[1]) ? 0.0 : x[1];
    const double s = 1.5 * a - b + 0.5 * a * b + noise(rng);
    if (kind == "regression") t.y.push_back(s);
    if (kind == "binary") t.y.push_back(s > 0 ? 1 : 0);
    if (kind == "multiclass") t.y.push_back(s < -0.5 ? 0 : (s < 0.5 ? 1 : 2));
  }
  return t;
}

// Directory holding breast_cancer.csv, wine.csv, diabetes.csv (and adult.csv
// when ../shared is present), made once per test binary; empty when
// scikit-learn is unavailable.
inline std::string RealTables() {
  static const std::string dir = [] {
    const std::string out = (std::filesystem::temp_directory_path() / "loupe-gbdt-tables").string();
    if (std::filesystem::exists(out + "/breast_cancer.csv")) return out;
    const std::string script = std::string(LOUPE_SOURCE_DIR) + "/workers/gbdt/scripts/make_tables.py";
    const std::string adult = std::string(LOUPE_SOURCE_DIR) + "/../shared/data/uci-adult/adult.test";
    const std::string cmd = "/usr/bin/python3 " + script + " " + out + " " + adult + " 2>/dev/null";
    return std::system(cmd.c_str()) == 0 ? out : std::string();
  }();
  return dir;
}

}  // namespace loupe::gbdt::testing

#endif  // LOUPE_WORKERS_GBDT_GBDT_TEST_UTIL_H_
