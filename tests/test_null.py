"""The batched permutation null equals the one-permutation-at-a-time loop it replaced."""

from __future__ import annotations

import numpy as np
import pytest

import ephys2expr.train.cv.null as null_module
from benchmarks.bench_null import reference_permutation_null
from ephys2expr.train.cv.folds import outer_folds, pooled_scores
from ephys2expr.train.cv.nested import nested_cv
from ephys2expr.train.cv.null import permutation_null
from tests.train_data import small_real_inputs, train_settings


@pytest.fixture(scope="module")
def real(raw_dir):
    features, targets, types = small_real_inputs(raw_dir, n_variable=60, n_flat=15)
    X = features.to_numpy()
    Y = np.ascontiguousarray(targets.to_numpy().T)
    return X, Y, types


def _observed(X, Y, folds, settings, weights):
    cv = nested_cv(X, Y, folds, settings, weights, verbose=False)
    return cv.fold_alpha, pooled_scores(Y, cv.oof_linear)[0]


# name: (settings, sample weights?)
CASES = {
    # the train stage's defaults (lasso, alpha auto, leave-one-out), a shorter path
    "lasso-loo": ({"cv": "loo"}, False),
    "elasticnet-kfold-weighted": ({"penalty": "elasticnet", "cv": "kfold"}, True),
    "ridge-loo-weighted": ({"penalty": "ridge", "cv": "loo"}, True),
    "fixed-alpha": ({"alpha": 0.05, "cv": "loo"}, False),
    # two broad types: 8 training rows for 11 features, a singular Gram matrix (the solver's
    # own path, where coordinate descent does not always converge)
    "lasso-group": ({"cv": "group"}, False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_batched_null_equals_the_reference_loop(real, case):
    X, Y, types = real
    values, weighted = CASES[case]
    settings = train_settings(n_alphas=8, n_permutations=60, null_stop_after=4, **values)
    classes = types["broad_type"].to_numpy()
    folds = outer_folds(len(X), settings.cv, 4, classes, settings.seed)
    weights = types["weight"].to_numpy(float) if weighted else None
    fold_alpha, r2 = _observed(X, Y, folds, settings, weights)
    old = reference_permutation_null(X, Y, folds, fold_alpha, r2, settings, weights, 4)
    new = permutation_null(X, Y, folds, fold_alpha, r2, settings, weights, 4, verbose=False)
    # the comparison means something only if genes stopped at different points
    assert len(np.unique(old.n_permutations)) > 3 and old.n_permutations.max() == 60
    np.testing.assert_array_equal(new.p_value, old.p_value)
    np.testing.assert_array_equal(new.n_permutations, old.n_permutations)
    assert new.n_fits == old.n_fits


def test_null_does_not_depend_on_batching_or_other_genes(real, monkeypatch):
    X, Y, _ = real
    settings = train_settings(n_alphas=8, n_permutations=40, null_stop_after=3)
    folds = outer_folds(len(X), "loo")
    fold_alpha, r2 = _observed(X, Y, folds, settings, None)
    whole = permutation_null(X, Y, folds, fold_alpha, r2, settings, None, 3, verbose=False)
    # a few pairs per kernel call: many more rounds, the same numbers
    monkeypatch.setattr(null_module, "MAX_PAIRS", 7)
    small = permutation_null(X, Y, folds, fold_alpha, r2, settings, None, 3, verbose=False)
    # a gene's p-value does not depend on the genes computed with it (gene chunks)
    half = Y.shape[1] // 2
    parts = [
        permutation_null(
            X, Y[:, sl], folds, fold_alpha[:, sl], r2[sl], settings, None, 3, verbose=False
        )
        for sl in (slice(0, half), slice(half, None))
    ]
    for res in (small, *parts):
        assert res.n_fits > 0
    for attr in ("p_value", "n_permutations"):
        np.testing.assert_array_equal(getattr(small, attr), getattr(whole, attr))
        joined = np.concatenate([getattr(p, attr) for p in parts])
        np.testing.assert_array_equal(joined, getattr(whole, attr))


def test_a_pair_stops_only_once_its_r2_cannot_reach_the_observed(real):
    """The kernel skips a pair's remaining folds once its r2 bound is below the observed r2:
    its output is then an upper bound of the full r2, below the observed - never a pair that
    would have reached it. Many pairs do stop (that is the saving)."""
    from ephys2expr.train.cv._null_kernel import null_r2_kernel
    from ephys2expr.train.cv.null import _KERNEL_ARGS, fold_designs

    X, Y, _ = real
    settings = train_settings(n_alphas=8, n_permutations=30)
    folds = outer_folds(len(X), "loo")
    fold_alpha, r2 = _observed(X, Y, folds, settings, None)
    design = fold_designs(X, folds, fold_alpha, settings)
    genes = np.flatnonzero(np.isfinite(r2))
    perms = np.array([np.random.default_rng(i).permutation(len(X)) for i in range(30)])
    pair_gene = np.repeat(genes, 30)
    pair_perm = np.tile(np.arange(30), len(genes))
    Yt = np.ascontiguousarray(Y.T)
    args = [design[k] for k in _KERNEL_ARGS]
    out, full = np.empty(pair_gene.size), np.empty(pair_gene.size)
    null_r2_kernel(Yt, pair_gene, pair_perm, perms, *args, r2, out)
    never = np.full_like(r2, -np.inf)  # no bound: every fold of every pair
    null_r2_kernel(Yt, pair_gene, pair_perm, perms, *args, never, full)
    # (a permutation that only swaps tied values answers with the observed r2 itself)
    tied = (Yt[pair_gene[:, None], perms[pair_perm]] == Yt[pair_gene]).all(axis=1)
    assert tied.any() and np.array_equal(out[tied], r2[pair_gene[tied]])
    out, full, pair_gene = out[~tied], full[~tied], pair_gene[~tied]
    stopped = out != full
    assert stopped.mean() > 0.3
    below = r2[pair_gene] - 1e-12
    assert np.all(out[stopped] < below[stopped]) and np.all(full[stopped] <= out[stopped])
    np.testing.assert_array_equal(out >= below, full >= below)
