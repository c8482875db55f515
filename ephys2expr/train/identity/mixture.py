"""Expression through identity (``model: mixture``) and the per-gene ``best`` of the kinds.

Kinds of a gene's prediction: ``lasso`` (the penalised linear model), ``family`` and
``type`` (sum over classes of P(class | x) x the class's mean expression,
:mod:`ephys2expr.identity.mixture`) and ``blend`` (their average). In each outer fold the
kind of every gene is chosen by the **inner** CV error on the outer training rows only: the
lasso's at its inner-CV alpha (``fold_inner_mse``), the mixtures' from the fold classifier's
inner out-of-fold probabilities with the inner training parts' class means - the same
inner folds. ``mixture`` chooses among the three mixture kinds, ``best`` among all four.
The held-out cells get the chosen kind's prediction; the final model's choice is made the
same way on all rows.

**The permutation null of a chosen model** (``model: mixture | best``) is a held-out
permutation test: in each outer fold, the fold's predictions of its held-out cells are
permuted among those cells (the fitted fold models and every choice stay fixed), and the
pooled r2 is recomputed. Given the training parts, each fold's predictor is a fixed function,
so under the null that a cell's features say nothing about its expression the held-out
cells' (prediction, expression) pairs are exchangeable within the fold: the test is valid
(the same exchangeability the refit null of ``lasso`` assumes) and costs one product per
permutation instead of refitting two classifiers and every gene's choice per permutation
(1,000 permutations x 5 folds x 2 levels of multinomial fits: about 2 hours a feature set).
It conditions on the training parts, so it asks whether the trained predictor predicts new
cells - not whether the procedure would find signal in other data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ephys2expr.identity.mixture import (
    blend,
    class_means,
    inner_mixture_predictions,
    mixture_predict,
)
from ephys2expr.model.store import clip_expression
from ephys2expr.train.cv.folds import pooled_scores
from ephys2expr.train.identity.classifier_cv import LevelCV, level_inner_folds
from ephys2expr.train.settings import TrainSettings

log = logging.getLogger("ephys2expr")

KINDS = ("lasso", "family", "type", "blend")
MIXTURE_KINDS = KINDS[1:]


def _mixtures(level_probas: dict, means: dict) -> dict:
    """Each mixture kind's predictions from per-level probabilities and class means."""
    out = {lv: mixture_predict(level_probas[lv], means[lv]) for lv in ("family", "type")}
    out["blend"] = blend(out["family"], out["type"])
    return out


def pick(choice: np.ndarray, preds: dict) -> np.ndarray:
    """Rows x genes: gene ``g`` from ``preds[KINDS[choice[g]]]`` (each rows x genes)."""
    out = np.empty_like(preds[KINDS[0]])
    for i, kind in enumerate(KINDS):
        genes = choice == i
        if genes.any():
            out[:, genes] = preds[kind][:, genes]
    return out


def fold_inner_mse(Y, tr, levels: dict[str, LevelCV], fit_index, settings, groups) -> dict:
    """Inner-CV MSE per gene of each mixture kind on rows ``tr`` (``fit_index``: which fold
    classifier; None = the final one)."""
    folds = level_inner_folds(tr, settings, groups)
    preds = {}
    for lv, res in levels.items():
        fit = res.final if fit_index is None else res.fold_fits[fit_index]
        preds[lv] = inner_mixture_predictions(
            fit.inner_proba_, Y[tr], res.y[tr], folds, len(res.classes)
        )
    preds["blend"] = blend(preds["family"], preds["type"])
    return {k: ((Y[tr] - p) ** 2).mean(axis=0) for k, p in preds.items()}


@dataclass
class MixtureCV:
    """Out-of-fold predictions of every kind and of the chosen models.

    Attributes
    ----------
    oof : dict
        ``lasso``, ``family``, ``type``, ``blend``, ``mixture`` and ``best`` -> out-of-fold
        predictions (rows x genes, clipped like the model's).
    fold_choice : dict
        ``mixture`` / ``best`` -> (n_folds, n_genes) index into :data:`KINDS`.
    final_choice : dict
        ``mixture`` / ``best`` -> (n_genes,) index into :data:`KINDS` (all rows' inner CV).
    means : dict
        Level -> class means on all rows (n_classes, n_genes): the final mixture's table.
    """

    oof: dict
    fold_choice: dict
    final_choice: dict
    means: dict


def _choose(mse: dict, kinds) -> np.ndarray:
    """Index into :data:`KINDS` of the kind with the smallest inner MSE (first on ties)."""
    idx = np.argmin(np.vstack([mse[k] for k in kinds]), axis=0)
    return np.array([KINDS.index(k) for k in kinds])[idx]


def mixture_cv(
    Y,
    lasso_oof,
    lasso_fold_mse,
    lasso_final_mse,
    levels: dict[str, LevelCV],
    folds,
    settings: TrainSettings,
    groups=None,
) -> MixtureCV:
    """Out-of-fold predictions of each kind, of ``mixture`` and of ``best`` (module docstring).

    Parameters
    ----------
    Y : ndarray, shape (n_rows, n_genes)
    lasso_oof : ndarray, shape (n_rows, n_genes)
        The lasso's out-of-fold predictions (clipped).
    lasso_fold_mse : ndarray, shape (n_folds, n_genes)
        Each outer fold's lasso inner-CV error at its chosen alpha.
    lasso_final_mse : ndarray, shape (n_genes,)
        The same for the final fit on all rows.
    levels : dict
        ``family`` and ``type`` :class:`~ephys2expr.train.identity.classifier_cv.LevelCV` on
        ``folds``.
    """
    Y = np.asarray(Y, dtype=float)
    n, n_genes = Y.shape
    oof = {k: np.empty((n, n_genes)) for k in MIXTURE_KINDS}
    oof["lasso"] = lasso_oof
    choice = {m: np.empty((len(folds), n_genes), dtype=np.int64) for m in ("mixture", "best")}
    for k, (tr, te) in enumerate(folds):
        means = {lv: class_means(Y[tr], r.y[tr], len(r.classes)) for lv, r in levels.items()}
        outer = _mixtures({lv: r.oof[te] for lv, r in levels.items()}, means)
        for kind, pred in outer.items():
            oof[kind][te] = pred
        mse = {"lasso": lasso_fold_mse[k], **fold_inner_mse(Y, tr, levels, k, settings, groups)}
        choice["mixture"][k] = _choose(mse, MIXTURE_KINDS)
        choice["best"][k] = _choose(mse, KINDS)
    for model in ("mixture", "best"):
        oof[model] = np.empty((n, n_genes))
        for k, (_, te) in enumerate(folds):
            oof[model][te] = pick(choice[model][k], {kind: oof[kind][te] for kind in KINDS})
    for kind in MIXTURE_KINDS + ("mixture",):
        clip_expression(oof[kind])  # convex combinations of means: a no-op but for rounding
    all_rows = np.arange(n)
    mse = {"lasso": lasso_final_mse, **fold_inner_mse(Y, all_rows, levels, None, settings, groups)}
    final = {"mixture": _choose(mse, MIXTURE_KINDS), "best": _choose(mse, KINDS)}
    means = {lv: class_means(Y, r.y, len(r.classes)) for lv, r in levels.items()}
    return MixtureCV(oof, choice, final, means)


def held_out_null(Y, pred, folds, observed_r2, n_permutations: int, seed: int):
    """Held-out permutation p-values of the pooled r2 (module docstring), per gene.

    Returns ``(p_value, seconds)``: p = (1 + #{permuted r2 >= observed}) / (1 + B), and 1
    for a gene without a finite r2. Only the cross term of the squared error moves under a
    permutation within folds, so each permutation costs one elementwise product.
    """
    import time

    t0 = time.perf_counter()
    Y = np.asarray(Y, dtype=float)
    rng = np.random.default_rng(seed)
    ss_tot = ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)
    base = (Y**2).sum(axis=0) + (pred**2).sum(axis=0)
    observed = np.nan_to_num(np.asarray(observed_r2, dtype=float), nan=np.inf)
    exceed = np.zeros(Y.shape[1], dtype=np.int64)
    perm = np.arange(Y.shape[0])
    for _ in range(n_permutations):
        for _, te in folds:
            perm[te] = rng.permutation(te)
        cross = np.einsum("ij,ij->j", Y, pred[perm])
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = 1.0 - (base - 2.0 * cross) / ss_tot
        exceed += r2 >= observed - 1e-12
    p = (1.0 + exceed) / (1.0 + n_permutations)
    return np.where(np.isfinite(observed), p, 1.0), time.perf_counter() - t0


def kind_report(Y, mix: MixtureCV) -> dict:
    """Genes with out-of-fold r2 > 0.1 per kind and per chosen model; genes each kind wins
    (final choice) and how often it won over genes x outer folds."""
    frac = {}
    for kind, pred in mix.oof.items():
        r2, _ = pooled_scores(Y, pred)
        ok = r2[np.isfinite(r2)]
        frac[kind] = round(float((ok > 0.1).mean()), 6)
    wins = {
        model: {
            "final": {k: int((mix.final_choice[model] == i).sum()) for i, k in enumerate(KINDS)},
            "outer_folds": {
                k: int((mix.fold_choice[model] == i).sum()) for i, k in enumerate(KINDS)
            },
        }
        for model in ("mixture", "best")
    }
    return {"frac_r2_gt_0.1": frac, "genes_won": wins}


__all__ = [
    "KINDS",
    "MIXTURE_KINDS",
    "MixtureCV",
    "held_out_null",
    "kind_report",
    "mixture_cv",
    "pick",
]
