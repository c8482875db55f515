"""Honest confidence under a lab shift (issue #30 item 4, identity/temper.py) on Scala's real
cells: an unshifted held-out batch keeps its probabilities (T = 1), tempering never changes
the most probable family, and on held-out batches moved like a foreign lab it improves the
calibration; the benchmark that fits the slope finds the tempering grows with the shift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from benchmarks.bench_temper import best_temperature, fit_slope, simulate
from ephys2expr.identity.align import EXC_FAMILIES, ClassGaussians, allowed_families, fit_alignment
from ephys2expr.identity.scores import expected_calibration_error
from ephys2expr.identity.temper import cell_temperatures, temper, temperature
from tests.test_transfer import scala  # noqa: F401  (the module-scoped fixture)


@pytest.fixture(scope="module")
def held_out(scala):  # noqa: F811
    """Gaussians and family probabilities of a classifier fitted on the training animals."""
    f, fam, held, _ = scala
    X = f.to_numpy()[~held]
    G = ClassGaussians.fit(X, fam[~held], list(f.columns))
    m, s = X.mean(axis=0), X.std(axis=0)
    clf = LogisticRegression(C=1.0, max_iter=3000).fit((X - m) / s, fam[~held])
    return G, clf, lambda Z: clf.predict_proba((Z - m) / s)


def _ece(p: np.ndarray, y: np.ndarray) -> float:
    top = np.column_stack([p.max(axis=1), np.zeros(len(p))])
    return expected_calibration_error(top, np.where(p.argmax(axis=1) == y, 0, 1))


def _nll(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())


def test_an_unshifted_held_out_batch_keeps_its_probabilities(scala, held_out):  # noqa: F811
    f, fam, held, _ = scala
    G, _, proba = held_out
    X = f.to_numpy()[held]
    al = fit_alignment(X, list(f.columns), G, "auto")
    assert temperature(al.shift, al.fitted) == 1.0
    T = cell_temperatures(al, X, list(f.columns))
    np.testing.assert_array_equal(T, 1.0)
    p = proba(al.apply(X, list(f.columns), G))
    np.testing.assert_allclose(temper(p, T), p, rtol=1e-12, atol=1e-15)


def test_tempering_a_shifted_held_out_batch_improves_calibration(scala, held_out):  # noqa: F811
    """Held-out animals moved like another lab (a 1.5-SD shift, types moved unequally),
    aligned with Exc/Inh known: T > 1, the top family of every cell is unchanged, and the
    tempered probabilities have the lower log-loss (what the slope was fitted for) over
    three simulated labs; the ECE of their pooled cells does not get worse by more than
    0.01 (it is noisy at ~200 cells a lab)."""
    f, fam, held, _ = scala
    G, clf, proba = held_out
    feats, X = list(f.columns), f.to_numpy()[held]
    classes = list(clf.classes_)
    y = np.array([classes.index(c) for c in fam[held]])
    ci = np.array([list(G.classes).index(c) for c in fam[held]])
    ei = np.where(np.isin(fam[held], EXC_FAMILIES), "Exc", "Inh")
    allowed = np.vstack([allowed_families(v, G.classes) for v in ei])
    mask = allowed[:, [list(G.classes).index(c) for c in classes]]
    before, after = [], []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        d, sc = rng.normal(0, 1.5, len(feats)), rng.lognormal(0, 0.3, len(feats))
        e = rng.normal(0, 0.4, (len(G.classes), len(feats)))
        Xs = G.raw(G.standardise(X) * sc + d + e[ci])
        al = fit_alignment(Xs, feats, G, "auto", allowed)
        p = np.where(mask, proba(al.apply(Xs, feats, G)), 0.0)
        p /= p.sum(axis=1, keepdims=True)
        T = cell_temperatures(al, Xs, feats)
        assert (T > 1.2).all()
        q = temper(p, T)
        np.testing.assert_array_equal(q.argmax(axis=1), p.argmax(axis=1))
        np.testing.assert_allclose(q[~mask], 0.0)
        before.append(p)
        after.append(q)
    p, q, yy = np.vstack(before), np.vstack(after), np.tile(y, 3)
    assert _nll(q, yy) < _nll(p, yy), (_nll(p, yy), _nll(q, yy))
    assert _ece(q, yy) < _ece(p, yy) + 0.01, (_ece(p, yy), _ece(q, yy))


def test_the_benchmark_finds_more_tempering_for_larger_shifts(scala):  # noqa: F811
    """A small run of benchmarks/bench_temper.py (the script behind TEMPER_SLOPE): the
    unshifted folds need no tempering (T ~ 1), shifted ones more, the fitted slope is > 0."""
    f, _, _, (_, types) = scala
    table = simulate(f, types.loc[f.index], draws=1, n_folds=3, sigmas=(0.0, 1.5), rhos=(0.25,))
    none = table[table["sigma"] == 0]["t_best"].mean()
    moved = table[(table["sigma"] > 0) & table["aligned"]]["t_best"].mean()
    assert abs(none - 1.0) < 0.1 and moved > none + 0.1, table
    assert fit_slope(table) > 0
    assert best_temperature(np.array([[0.9, 0.1], [0.9, 0.1]]), np.array([0, 1])) > 1


def test_temper_keeps_zeros_and_the_order(scala):  # noqa: F811
    p = pd.DataFrame([[0.7, 0.2, 0.1, 0.0], [0.25, 0.25, 0.5, 0.0]]).to_numpy()
    q = temper(p, np.array([2.0, 1.0]))
    np.testing.assert_allclose(q.sum(axis=1), 1.0)
    assert q[0, 3] == 0.0 and q[0, 0] < 0.7 and q[0, 1] > 0.2
    np.testing.assert_allclose(q[1], p[1])
    np.testing.assert_array_equal(np.argsort(q, axis=1), np.argsort(p, axis=1))
