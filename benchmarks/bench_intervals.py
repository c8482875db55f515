"""Benchmark the intervals' CV calibration against a per-gene loop of crepes.

Ours: :func:`ephys2expr.model.intervals.conformal_quantile` for every gene at once (one
sort of the calibration rows per fold). crepes: ``ConformalRegressor().fit(residuals,
sigmas)`` and ``predict_int`` per gene and fold, as its documentation shows. Both on the
real Scala cells' out-of-fold residuals (``data/train/scala2021/oof_predictions.parquet``,
5 outer folds by animal), plain and normalised (sigma = the ``features`` difficulty), at the
ten levels of the calibration plot; the intervals are checked equal. Run::

    python -m benchmarks.bench_intervals
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ephys2expr.model.intervals import conformal_quantile, fit_scale, scale_values
from ephys2expr.scaling import scaler_stats
from ephys2expr.train.cv.folds import outer_folds
from ephys2expr.train.uncertainty.intervals import CV_LEVELS


def main() -> None:
    from crepes import ConformalRegressor

    prepared = "data/prepared/scala2021/"
    features = pd.read_parquet(prepared + "train_features.parquet")
    types = pd.read_parquet(prepared + "train_types.parquet").loc[features.index]
    oof = pd.read_parquet("data/train/scala2021/oof_predictions.parquet")[list(features.index)]
    targets = pd.read_parquet(prepared + "train_targets.parquet").loc[oof.index]
    Y = targets[list(features.index)].to_numpy(dtype=float).T
    pred = oof.to_numpy(dtype=float).T
    X = features.to_numpy(dtype=float)
    folds = outer_folds(len(X), "group_kfold", 5, cell_groups=types["group"].astype(str))
    res = Y - pred
    sigmas = []
    for tr, te in folds:
        m, s = scaler_stats(X[tr])
        params = fit_scale("features", np.abs(res[tr]), X[tr], None, m, s)
        sigmas.append((scale_values(params, X[tr]), scale_values(params, X[te])))
    t0 = time.perf_counter()
    ours = []
    for (tr, _), (s_tr, s_te) in zip(folds, sigmas, strict=True):
        q = conformal_quantile(np.abs(res[tr]) / s_tr, CV_LEVELS)
        ours.append(q[:, None, :] * s_te[None])
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    worst = 0.0
    for k, ((tr, te), (s_tr, s_te)) in enumerate(zip(folds, sigmas, strict=True)):
        for g in range(Y.shape[1]):
            cr = ConformalRegressor().fit(res[tr, g], sigmas=s_tr[:, g])
            for i, level in enumerate(CV_LEVELS):
                ref = cr.predict_int(pred[te, g], sigmas=s_te[:, g], confidence=level)
                worst = max(worst, float(np.abs(ref[:, 1] - pred[te, g] - ours[k][i, :, g]).max()))
    t_crepes = time.perf_counter() - t0
    print(f"{Y.shape[1]} genes x {len(folds)} folds x {len(CV_LEVELS)} levels, {len(X)} cells")
    print(
        f"numpy (all genes at once): {t_ours:.2f} s; crepes per gene: {t_crepes:.1f} s; "
        f"ratio {t_crepes / t_ours:.0f}x; largest difference {worst:.1e} log2 units"
    )


if __name__ == "__main__":
    main()
