#!/usr/bin/python3
"""Writes the real tables gbdt.influence's tests, demo and benchmark use, as
numeric CSV with a header and a `label` column:

  breast_cancer.csv, wine.csv, diabetes.csv  scikit-learn's bundled copies
                                             (Debian's python3-sklearn; no download)
  adult.csv                                  UCI Adult's test split from
                                             ../shared/data/uci-adult/adult.test if present:
                                             categories as integer codes (sorted), '?' empty
                                             (missing), label 1 for income >50K

Usage: make_tables.py OUT_DIR [ADULT_TEST_FILE]. Exit 3 when scikit-learn is
missing, so callers can skip with a message.
"""
import csv
import os
import sys


def write(path, names, rows, labels):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(list(names) + ["label"])
        for r, y in zip(rows, labels):
            w.writerow([("" if v is None else repr(float(v))) for v in r] + [repr(float(y)) if isinstance(y, float) else int(y)])


def adult(src, out):
    numeric = {0, 2, 4, 10, 11, 12}
    rows = []
    with open(src) as f:
        for line in f:
            parts = [p.strip() for p in line.strip().split(",")]
            if len(parts) != 15:
                continue  # the "|1x3 Cross validator" comment and blank lines
            rows.append(parts)
    codes = {}
    for c in range(14):
        if c not in numeric:
            codes[c] = {v: i for i, v in enumerate(sorted({r[c] for r in rows if r[c] != "?"}))}
    names = ["age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
             "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country"]
    feats, labels = [], []
    for r in rows:
        feats.append([None if r[c] == "?" else (float(r[c]) if c in numeric else codes[c][r[c]]) for c in range(14)])
        labels.append(1 if r[14].startswith(">50K") else 0)
    write(out, names, feats, labels)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    if len(sys.argv) > 2 and os.path.exists(sys.argv[2]):
        adult(sys.argv[2], os.path.join(out, "adult.csv"))
    try:
        from sklearn import datasets
    except ImportError:
        print("scikit-learn is not installed (Debian: python3-sklearn)", file=sys.stderr)
        sys.exit(3)
    for name, loader in [("breast_cancer", datasets.load_breast_cancer), ("wine", datasets.load_wine),
                         ("diabetes", datasets.load_diabetes)]:
        d = loader()
        labels = [float(v) for v in d.target] if name == "diabetes" else [int(v) for v in d.target]
        names = [n.replace(" ", "_") for n in d.feature_names]
        write(os.path.join(out, name + ".csv"), names, d.data.tolist(), labels)


if __name__ == "__main__":
    main()
