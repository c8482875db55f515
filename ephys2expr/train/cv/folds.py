"""Outer cross-validation folds and the pooled per-gene scores computed over them.

Scores are *pooled* over folds: all out-of-fold predictions are collected first, then per
gene ``r2 = 1 - sum (y - yhat)^2 / sum (y - mean(y))^2`` and ``rmse = sqrt(mean (y - yhat)^2)``
(with leave-one-out each fold has one row, so per-fold r2 would not exist). Scores weight
each cell type equally, also when the fit uses sample weights.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import GroupKFold, KFold, LeaveOneGroupOut, LeaveOneOut

from ephys2expr.errors import InputError
from ephys2expr.train.settings import CV_SCHEMES, TrainSettings


def resolve_cv(cv: str, grouped: bool) -> str:
    """The outer CV scheme ``auto`` stands for: ``group_kfold`` for per-cell training rows
    that carry a group (the animal), ``loo`` for cell-type means."""
    if cv != "auto":
        return cv
    return "group_kfold" if grouped else "loo"


def check_n_folds(settings: TrainSettings, n: int, cell_groups=None) -> None:
    """Enough animals (``group_kfold``) or rows (``kfold``) for ``settings.n_folds``?

    Raises one :class:`InputError` line naming the key that set ``n_folds`` and the command
    that lowers it for this source only (``settings.override_hint``).
    """
    if settings.cv == "group_kfold" and cell_groups is not None:
        most, what = len(np.unique(np.asarray(cell_groups))), "animals (groups)"
    elif settings.cv == "kfold":
        most, what = n, "training rows"
    else:
        return
    if settings.n_folds > most:
        of = f" of source '{settings._source}'" if settings._source else ""
        raise InputError(
            f"{settings.where('n_folds')}: {settings.n_folds} folds for the {most} {what}{of}; "
            f"set n_folds <= {most}, e.g. {settings.override_hint('n_folds', most)}"
        )


def outer_folds(
    n: int, cv: str, n_folds: int = 5, groups=None, seed: int = 0, cell_groups=None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Outer (train, test) index pairs.

    ``loo`` leave-one-out, ``kfold`` shuffled k-fold, ``group`` leave-one-group-out by
    ``groups`` (the broad type), ``group_kfold`` k-fold keeping each of ``cell_groups`` (the
    animal of each cell) whole: no animal is in both the training and the held-out part.
    """
    dummy = np.zeros(n)
    if cv == "group_kfold":
        if cell_groups is None:
            raise InputError(
                "cv 'group_kfold' needs a 'group' column in train_types.parquet (per-cell "
                "training data: the animal of each cell)"
            )
        cell_groups = np.asarray(cell_groups)
        n_groups = len(np.unique(cell_groups))
        if n_groups < n_folds:
            raise InputError(
                f"params.yaml train.n_folds: {n_folds} folds for {n_groups} animals (groups); "
                f"set n_folds <= {n_groups}"
            )
        folds = list(GroupKFold(n_folds).split(dummy, groups=cell_groups))
    elif cv == "loo":
        folds = list(LeaveOneOut().split(dummy))
    elif cv == "kfold":
        if n_folds > n:
            raise InputError(f"params.yaml train.n_folds: {n_folds} folds for {n} training rows")
        folds = list(KFold(n_folds, shuffle=True, random_state=seed).split(dummy))
    elif cv == "group":
        if groups is None:
            raise InputError("cv 'group' needs groups (train_types.parquet broad_type)")
        groups = np.asarray(groups)
        if len(np.unique(groups)) < 2:
            raise InputError("cv 'group' needs at least two groups (broad_type values)")
        folds = list(LeaveOneGroupOut().split(dummy, groups=groups))
    else:
        raise InputError(f"params.yaml train.cv: {cv!r} is not one of {CV_SCHEMES}")
    for tr, _ in folds:
        if len(tr) < 3:
            raise InputError(f"cv {cv!r}: a fold has only {len(tr)} training rows")
    return folds


def pooled_scores(Y: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene r2 and RMSE over all rows (types) at once; r2 is NaN for a constant gene."""
    ss_res = ((Y - pred) ** 2).sum(axis=0)
    ss_tot = ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.nan)
    rmse = np.sqrt(ss_res / Y.shape[0])
    return r2, rmse


__all__ = ["check_n_folds", "outer_folds", "pooled_scores", "resolve_cv"]
