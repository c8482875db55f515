"""The one standardisation (ephys2expr/scaling.py) and the one interval-bound formula
(model.intervals.clipped_bounds), on real features and predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler

from ephys2expr.features import CORE_FEATURES
from ephys2expr.model.intervals import clipped_bounds
from ephys2expr.model.store import EXPRESSION_RANGE
from ephys2expr.prepare.run import load_training_set
from ephys2expr.scaling import scaler_stats, standardise


def _features(raw_dir) -> np.ndarray:
    training = load_training_set("rds", raw_dir=raw_dir)
    return training.features[CORE_FEATURES].to_numpy(dtype=float)


def test_the_scaler_is_scikit_learns_on_the_real_features(raw_dir):
    X = _features(raw_dir)
    mean, scale = scaler_stats(X)
    reference = StandardScaler().fit(X)
    np.testing.assert_allclose(mean, reference.mean_, rtol=1e-12)
    np.testing.assert_allclose(scale, reference.scale_, rtol=1e-12)
    np.testing.assert_allclose(standardise(X, mean, scale), reference.transform(X), atol=1e-12)
    # a table goes in as it is (a DataFrame, float32): float64 out
    frame = pd.DataFrame(X.astype(np.float32))
    assert standardise(frame, mean, scale).dtype == np.float64


def test_a_constant_column_scales_by_one_and_a_rounding_one_only_near_constant(raw_dir):
    X = _features(raw_dir)[:7]
    constant = np.column_stack([X, np.full(len(X), 3.0), np.full(len(X), 0.1)])
    mean, scale = scaler_stats(constant)
    assert scale[-2] == 1.0 and scale[-1] == 1.0
    # 0.1 seven times: its std is rounding (1.4e-17, not 0); StandardScaler's rule (the
    # default) calls it constant, the exact rule (the identity classifier's) keeps it
    assert 0 < constant[:, -1].std() < 1e-15
    _, exact = scaler_stats(constant, near_constant=False)
    assert exact[-2] == 1.0 and exact[-1] == constant[:, -1].std()
    np.testing.assert_array_equal(StandardScaler().fit(constant).scale_[-2:], [1.0, 1.0])
    np.testing.assert_array_equal(exact[:-2], scale[:-2])


def test_interval_bounds_are_clipped_to_possible_expression(raw_dir):
    lo, hi = EXPRESSION_RANGE
    pred = np.array([[0.05, 3.0, hi - 0.1], [0.0, 7.5, 12.0]])
    half = np.array([[0.2, 1.0, 0.5], [np.inf, 0.0, 1.0]])
    lower, upper = clipped_bounds(pred, pred, half, EXPRESSION_RANGE)
    assert (lower >= lo).all() and (upper <= hi).all()
    assert (lower <= pred).all() and (pred <= upper).all()
    np.testing.assert_array_equal(lower[0], [lo, 2.0, hi - 0.6])
    np.testing.assert_array_equal(upper[0, :2], [0.25, 4.0])
    assert upper[0, 2] == hi  # cut at the ceiling
    assert (lower[1, 0], upper[1, 0]) == (lo, hi)  # an unbounded interval spans every value
    # an extrapolated cell: the interval spans the prediction and the unbounded value
    low, high = np.array([[2.0]]), np.array([[5.0]])
    lower, upper = clipped_bounds(low, high, np.array([[0.5]]), EXPRESSION_RANGE)
    assert (lower.item(), upper.item()) == (1.5, 5.5)
