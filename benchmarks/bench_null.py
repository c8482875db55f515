"""Benchmark the permutation null: batched numba kernel vs the one-permutation-at-a-time loop.

Not a test. On the real training table (``data/prepared/rds``, default settings: lasso,
``alpha: auto``, leave-one-out, 1,000 permutations, ``null_stop_after`` 10) it runs the nested
CV once for the per-fold alphas and observed r2, then, in the same run and on the same genes,

1. :func:`reference_permutation_null` - the null as it was before the batched kernel: a Python
   loop over permutations, each rerunning :func:`ephys2expr.train.cv.nested.nested_cv` (20 estimator
   fits) over the genes still active; kept here as the reference tests compare against;
2. :func:`ephys2expr.train.cv.null.permutation_null` - the batched kernel;

and prints both wall and CPU times (CPU time of all threads: steadier than wall time when
other jobs share the machine), their ratios, and whether p-values / permutation counts are
identical. ``--genes N`` times both on a seeded random
subset of N genes (the reference takes ~4-5 minutes on all genes on a 2-core machine);
``--new-only`` skips the reference. Folds and settings are the train stage's for the table
(``--prepared-dir data/prepared/scala2021``: 5-fold grouped by animal); there, where each
fold holds hundreds of test cells, the kernel's fold-sum path is also timed against its
per-row path (what it ran before), same run, same p-values expected.
Run: ``python -m benchmarks.bench_null [--genes N] [--prepared-dir ...]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

import ephys2expr.train.cv.null as null_module
from ephys2expr.train.cv.folds import pooled_scores
from ephys2expr.train.cv.nested import log_progress, nested_cv
from ephys2expr.train.cv.null import NullResult, permutation_null, sequential_p_values
from ephys2expr.train.settings import TrainSettings


def reference_permutation_null(
    X,
    Y,
    folds,
    fold_alpha,
    observed_r2,
    settings: TrainSettings,
    weights=None,
    stop_after=10,
    verbose: bool = False,
) -> NullResult:
    """The permutation null before the batched kernel (same arguments and meaning as
    :func:`~ephys2expr.train.cv.null.permutation_null`): one permutation per loop iteration, each
    a full :func:`nested_cv` with the real-data fold alphas over the genes still active."""
    start = time.perf_counter()
    n, n_genes = Y.shape
    B = settings.n_permutations
    rng = np.random.default_rng(settings.seed)
    observed = np.nan_to_num(np.asarray(observed_r2, dtype=float), nan=np.inf)
    ge = np.zeros(n_genes, dtype=np.int64)
    used = np.zeros(n_genes, dtype=np.int64)
    active = np.flatnonzero(np.isfinite(observed))
    fits = 0
    for b in range(B):
        perm = rng.permutation(n)
        if active.size == 0:
            continue
        Yp = Y[perm][:, active]
        cv = nested_cv(X, Yp, folds, settings, weights, fold_alpha=fold_alpha[:, active])
        r2, _ = pooled_scores(Yp, cv.oof_linear)
        fits += active.size
        used[active] += 1
        ge[active] += r2 >= observed[active] - 1e-12
        if stop_after > 0:
            active = active[ge[active] < stop_after]
        if verbose and ((b + 1) % max(1, B // 10) == 0 or b + 1 == B):
            log_progress(f"reference null ({active.size} genes still permuted):", b + 1, B, start)
    p = sequential_p_values(ge, used, observed, B, stop_after)
    return NullResult(p, used, fits, time.perf_counter() - start)


def real_inputs(prepared="data/prepared/rds"):
    """Features, targets (types x genes) and types of the real training table."""
    from ephys2expr.train.inputs import load_training_inputs

    f, t, ty = load_training_inputs(
        f"{prepared}/train_features.parquet",
        f"{prepared}/train_targets.parquet",
        f"{prepared}/train_types.parquet",
    )
    return f.to_numpy(float), np.ascontiguousarray(t.to_numpy(float).T), ty.loc[f.index]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--genes", type=int, default=0, help="random subset of genes (0 = all)")
    ap.add_argument("--new-only", action="store_true", help="skip the reference loop")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--prepared-dir", default="data/prepared/rds")
    args = ap.parse_args(argv)
    from ephys2expr.train.cv.folds import outer_folds
    from ephys2expr.train.evaluate import resolved_settings

    X, Y, types = real_inputs(args.prepared_dir)
    settings = resolved_settings(TrainSettings.from_params(args.params), types)
    if args.genes:
        keep = np.sort(np.random.default_rng(0).choice(Y.shape[1], args.genes, replace=False))
        Y = np.ascontiguousarray(Y[:, keep])
    cells = types["group"].astype(str).to_numpy() if "group" in types.columns else None
    folds = outer_folds(
        len(X), settings.cv, settings.n_folds, types["broad_type"].to_numpy(), settings.seed, cells
    )
    groups = cells if settings.cv == "group_kfold" else None
    weights = types["weight"].to_numpy(float) if settings.sample_weight == "cells" else None
    print(
        f"{Y.shape[1]} genes x {len(X)} rows, {settings.cv} ({len(folds)} folds), "
        f"{settings.n_permutations} permutations, stop after {settings.null_stop_after}"
    )
    with threadpool_limits(1, user_api="blas"):  # as the train stage runs
        t = time.perf_counter()
        cv = nested_cv(X, Y, folds, settings, weights, verbose=False, groups=groups)
        print(f"nested CV (per-fold alphas, observed r2): {time.perf_counter() - t:.1f} s")
        r2, _ = pooled_scores(Y, cv.oof_linear)  # the statistic the null tests
        args_null = (X, Y, folds, cv.fold_alpha, r2, settings, weights)
        small = np.flatnonzero(np.isfinite(r2))[:20]  # compile / load the numba cache
        permutation_null(
            X,
            Y[:, small],
            folds,
            cv.fold_alpha[:, small],
            r2[small],
            settings,
            weights,
            settings.null_stop_after,
            verbose=False,
        )
        cpu = time.process_time()
        new = permutation_null(*args_null, settings.null_stop_after, verbose=False)
        new_cpu = time.process_time() - cpu
        print(
            f"batched null:   {new.seconds:7.1f} s wall, {new_cpu:7.1f} s CPU "
            f"({new.n_fits:,} gene x permutation CVs)"
        )
        if null_module.fold_sums_apply(folds, *X.shape):  # time the per-row path too
            null_module.FOLD_SUMS = False
            cpu = time.process_time()
            rows = permutation_null(*args_null, settings.null_stop_after, verbose=False)
            rows_cpu = time.process_time() - cpu
            null_module.FOLD_SUMS = True
            same = np.array_equal(rows.p_value, new.p_value)
            print(
                f"  per-row path: {rows.seconds:7.1f} s wall, {rows_cpu:7.1f} s CPU; fold sums "
                f"{rows.seconds / new.seconds:.1f}x faster wall, {rows_cpu / new_cpu:.1f}x "
                f"CPU; p-values identical: {same}"
            )
        if args.new_only:
            return
        cpu = time.process_time()
        old = reference_permutation_null(*args_null, settings.null_stop_after)
        old_cpu = time.process_time() - cpu
    print(
        f"reference null: {old.seconds:7.1f} s wall, {old_cpu:7.1f} s CPU "
        f"({old.n_fits:,} gene x permutation CVs)"
    )
    print(
        f"ratio (reference / batched): {old.seconds / new.seconds:.1f}x wall, "
        f"{old_cpu / new_cpu:.1f}x CPU time (all threads)"
    )
    same_p = np.array_equal(old.p_value, new.p_value)
    same_n = np.array_equal(old.n_permutations, new.n_permutations)
    print(f"p-values identical: {same_p}; permutation counts identical: {same_n}")


if __name__ == "__main__":
    main()
