"""Benchmark the train stage's solver against scikit-learn on the same data, in one run.

Not a test. Prints wall times and ratios for

1. the original project's work - Lasso(alpha=0.01) on standardised features, 4-fold CV,
   every gene - done by (a) our vectorised solver, (b) a per-gene scikit-learn loop
   (Pipeline(StandardScaler, Lasso) + cross_val_predict per gene), (c) scikit-learn with a
   multi-output target (one Pipeline fitted on all genes per fold);
2. the default train stage without the permutation null - alpha "auto" (30 alphas, inner
   5-fold), leave-one-out outer CV, every gene - ours vs the per-gene scikit-learn loop
   (GridSearchCV over the same alphas and inner folds inside each outer fold);

on the real training table (data/prepared/rds) and on a synthetic table of the original's full
size (48 types x 15 features x 45,000 genes). scikit-learn loops are timed on a random gene
subset and scaled linearly to all genes (printed as such). Peak memory of our runs is read
from a child process. Run: ``python -m benchmarks.bench_train`` (add ``--quick`` to skip the
full-size synthetic table).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")


def real_table():
    from ephys2expr.train.inputs import load_training_inputs

    f, t, ty = load_training_inputs(
        "data/prepared/rds/train_features.parquet",
        "data/prepared/rds/train_targets.parquet",
        "data/prepared/rds/train_types.parquet",
    )
    return f.to_numpy(), np.ascontiguousarray(t.to_numpy().T)


def synthetic_table(n=48, p=15, g=45_000, seed=0):
    """Correlated features in mixed units; log2-like targets, most genes nearly flat."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)) @ rng.normal(size=(4, p)) + 0.5 * rng.normal(size=(n, p))
    X = X * rng.uniform(0.1, 200, size=p) + rng.normal(size=p) * 30
    Xs = (X - X.mean(0)) / X.std(0)
    B = rng.normal(size=(p, g)) * (rng.random((p, g)) < 0.2) * (rng.random(g) < 0.3)
    scale = rng.lognormal(-2, 1.2, size=g)
    Y = np.clip(3 * scale + Xs @ B * scale + rng.normal(size=(n, g)) * scale, 0, None)
    return X, Y


def ours(X, Y, cv, alpha):
    from threadpoolctl import threadpool_limits

    from ephys2expr.train.cv.folds import outer_folds
    from ephys2expr.train.cv.nested import nested_cv
    from ephys2expr.train.settings import TrainSettings

    settings = TrainSettings.from_params(
        {"train": {"alpha": alpha, "cv": cv, "n_folds": 4, "n_permutations": 0}}
    )
    folds = outer_folds(len(X), cv, 4, seed=0)
    nested_cv(X[:, :], Y[:, :50], folds, settings)  # compile / warm the numba cache
    t = time.perf_counter()
    with threadpool_limits(1, user_api="blas"):
        res = nested_cv(X, Y, folds, settings)
    return time.perf_counter() - t, res.oof


def sk_loop(X, Y, cv, alpha, genes):
    from sklearn.linear_model import Lasso
    from sklearn.model_selection import GridSearchCV, KFold, LeaveOneOut, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ephys2expr.model.path import alpha_grid

    outer = LeaveOneOut() if cv == "loo" else KFold(4, shuffle=True, random_state=0)
    out = {}
    t = time.perf_counter()
    for g in genes:
        pipe = make_pipeline(StandardScaler(), Lasso(alpha=alpha if alpha != "auto" else 1.0))
        if alpha == "auto":
            pipe = GridSearchCV(
                pipe,
                {"lasso__alpha": alpha_grid(10, 1e-3, 30)},
                cv=KFold(5, shuffle=True, random_state=0),
                scoring="neg_mean_squared_error",
            )
        out[g] = cross_val_predict(pipe, X, Y[:, g], cv=outer)
    return (time.perf_counter() - t) * Y.shape[1] / len(genes), out


def sk_multi(X, Y, alpha, n_sub):
    from sklearn.linear_model import Lasso
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    sub = Y[:, :n_sub]
    t = time.perf_counter()
    cross_val_predict(
        make_pipeline(StandardScaler(), Lasso(alpha=alpha)),
        X,
        sub,
        cv=KFold(4, shuffle=True, random_state=0),
    )
    return (time.perf_counter() - t) * Y.shape[1] / n_sub


def child(which, cv, alpha):
    X, Y = real_table() if which == "real" else synthetic_table()
    sec, _ = ours(X, Y, cv, alpha)
    print(json.dumps({"seconds": sec}))


def measure_ours(which, cv, alpha):
    """Our run in a child process: wall time and peak resident memory."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_train", "--child", which, cv, str(alpha)],
        capture_output=True,
        text=True,
        check=True,
    )
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"], peak_mb


def run(which, n_loop_fixed, n_loop_auto, n_multi):
    X, Y = real_table() if which == "real" else synthetic_table()
    n, g = Y.shape
    print(f"\n=== {which} table: {n} types x {X.shape[1]} features x {g:,} genes ===")
    rng = np.random.default_rng(0)
    # 1. the original's work: fixed alpha 0.01, 4-fold CV
    t_ours, _ = measure_ours(which, "kfold", 0.01)
    genes = rng.choice(g, size=n_loop_fixed, replace=False)
    t_loop, ref = sk_loop(X, Y, "kfold", 0.01, genes)
    _, oof = ours(X, Y, "kfold", 0.01)
    err = max(np.abs(oof[:, k] - v).max() for k, v in ref.items())
    t_multi = sk_multi(X, Y, 0.01, n_multi)
    print(
        f"[fixed alpha=0.01, 4-fold CV] ours {t_ours:.2f} s | per-gene sklearn loop "
        f"{t_loop:.1f} s (timed on {n_loop_fixed} genes, scaled x{g / n_loop_fixed:.0f}) -> "
        f"{t_loop / t_ours:.0f}x | sklearn multi-output {t_multi:.1f} s (timed on {n_multi} "
        f"genes, scaled) -> {t_multi / t_ours:.0f}x | max |oof difference| {err:.1e} "
        "(sklearn at its default tol=1e-4; with tol=1e-12 it agrees to <1e-9)"
    )
    # 2. the default stage without the null: alpha auto (30), LOO outer CV
    t_auto, peak = measure_ours(which, "loo", "auto")
    genes = rng.choice(g, size=n_loop_auto, replace=False)
    t_loop_auto, _ = sk_loop(X, Y, "loo", "auto", genes)
    print(
        f"[alpha auto (30 alphas, inner 5-fold), LOO outer CV] ours {t_auto:.1f} s | per-gene "
        f"sklearn GridSearchCV loop {t_loop_auto / 3600:.1f} h (timed on {n_loop_auto} genes, "
        f"scaled) -> {t_loop_auto / t_auto:.0f}x | peak RSS of our runs so far {peak:.0f} MB"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="real table only")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        which, cv, alpha = args.child
        child(which, cv, alpha if alpha == "auto" else float(alpha))
        return
    import numba

    print(
        f"numba threads: {numba.get_num_threads()}; timings are wall-clock and noisy on a "
        "shared machine"
    )
    run("real", n_loop_fixed=300, n_loop_auto=10, n_multi=2000)
    if not args.quick:
        run("synthetic", n_loop_fixed=300, n_loop_auto=5, n_multi=2000)


if __name__ == "__main__":
    pd.set_option("display.width", 120)
    main()
