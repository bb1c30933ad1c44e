#!/usr/bin/python3
"""tree_influence's BoostIn recipe, re-implemented in numpy for a same-run
baseline (tree_influence itself cannot be installed here: no pip access).

It follows the algorithm structure of tree_influence v0.1.7's
explainers/boostin.py as described in ../shared/reference/gbdt-influence.md,
not its code: fit() replays boosting, and for every boosting round, class and
leaf selects the leaf's training rows with np.where to compute leaf
derivatives; get_local_influence() replays the test rows' gradients and, per
test row, multiplies the (n_train, n_boost, n_class) derivative array by a
same-leaf mask and sums. Trees are read from the same XGBoost JSON model
Loupe explains (the anchor reads the text dump; the same trees).

Usage: gbdt_boostin_reference.py MODEL.json TRAIN.csv TEST.csv LR LAMBDA OUT.bin [--exact]
Prints "fit_seconds=<s> influence_seconds=<s>" and writes the n_train × n_test
float64 matrix to OUT.bin. --exact uses θ = v/η in the derivative (Loupe's
choice) instead of the anchor's v, so values can be compared.
"""
import json
import sys
import time

import numpy as np


class Tree:
    def __init__(self, t):
        self.left = np.array(t["left_children"])
        self.right = np.array(t["right_children"])
        self.feature = np.array(t["split_indices"])
        self.threshold = np.array(t["split_conditions"], dtype=np.float32)
        self.default_left = np.array(t["default_left"], dtype=bool)
        leaves = []
        stack = [0]
        while stack:  # pre-order, left first
            n = stack.pop()
            if self.left[n] < 0:
                leaves.append(n)
            else:
                stack += [self.right[n], self.left[n]]
        self.leaf_nodes = np.array(leaves)
        self.leaf_id = np.full(len(self.left), -1)
        self.leaf_id[self.leaf_nodes] = np.arange(len(leaves))
        self.leaf_vals = self.threshold[self.leaf_nodes].astype(np.float64)

    def apply(self, X):
        node = np.zeros(X.shape[0], dtype=np.int64)
        active = self.left[node] >= 0
        while active.any():
            idx = np.where(active)[0]
            n = node[idx]
            v = X[idx, self.feature[n]]
            go_left = np.where(np.isnan(v), self.default_left[n], v < self.threshold[n])
            node[idx] = np.where(go_left, self.left[n], self.right[n])
            active = self.left[node] >= 0
        return self.leaf_id[node]

    def predict(self, X):
        return self.leaf_vals[self.apply(X)]


def load(path):
    data = np.atleast_1d(np.genfromtxt(path, delimiter=",", names=True))
    names = data.dtype.names
    X = np.stack([data[n] for n in names if n != "label"], axis=1).astype(np.float32)
    return X, data["label"].astype(np.float64)


def main():
    model_path, train_path, test_path, lr, lam, out = sys.argv[1:7]
    exact = "--exact" in sys.argv
    lr, lam = float(lr), float(lam)
    learner = json.load(open(model_path))["learner"]
    objective = learner["objective"]["name"]
    if objective != "binary:logistic":
        raise SystemExit("this reference covers binary:logistic only")
    base = float(learner["learner_model_param"]["base_score"])
    bias = np.log(base / (1 - base))
    trees = [Tree(t) for t in learner["gradient_booster"]["model"]["trees"]]
    n_boost, n_class = len(trees), 1
    Xtr, ytr = load(train_path)
    Xte, yte = load(test_path)

    def grad_hess(y, f):
        p = 1 / (1 + np.exp(-f))
        return p - y, np.maximum(p * (1 - p), 1e-16)

    t0 = time.perf_counter()
    # fit(): leaf derivatives, shape (n_train, n_boost, n_class)
    leaf_idxs = np.stack([t.apply(Xtr) for t in trees], axis=1)[:, :, None]
    approx = np.full(Xtr.shape[0], bias)
    dvs = np.zeros((Xtr.shape[0], n_boost, n_class))
    for b, t in enumerate(trees):
        g, h = grad_hess(ytr, approx)
        for leaf in range(len(t.leaf_vals)):
            docs = np.where(leaf_idxs[:, b, 0] == leaf)[0]
            v = t.leaf_vals[leaf] / lr if exact else t.leaf_vals[leaf]
            dvs[docs, b, 0] = (g[docs] + v * h[docs]) / (h[docs].sum() + lam) * lr
        approx += t.predict(Xtr)
    t1 = time.perf_counter()
    # get_local_influence()
    approx = np.full(Xte.shape[0], bias)
    test_g = np.zeros((Xte.shape[0], n_boost, n_class))
    for b, t in enumerate(trees):
        test_g[:, b, 0] = grad_hess(yte, approx)[0]
        approx += t.predict(Xte)
    test_leaf = np.stack([t.apply(Xte) for t in trees], axis=1)[:, :, None]
    influence = np.zeros((Xtr.shape[0], Xte.shape[0]))
    for i in range(Xte.shape[0]):
        mask = np.where(leaf_idxs == test_leaf[i], 1, 0)
        influence[:, i] = np.sum(dvs * test_g[i] * mask, axis=(1, 2))
    t2 = time.perf_counter()
    influence.astype(np.float64).tofile(out)
    print(f"fit_seconds={t1 - t0:.6f} influence_seconds={t2 - t1:.6f}")


if __name__ == "__main__":
    main()
