"""Honest evaluation of the per-gene models: nested cross-validation, baselines, permutation null.

Everything here works on arrays ``X`` (cell types x features, original units) and ``Y`` (cell
types x genes, log2 expression) and returns per-gene results. Every fold standardises its
features with the statistics of its own training rows (inside :class:`MultiGeneElasticNet`),
and with ``alpha: auto`` the alpha of each gene is chosen by an inner k-fold on the outer
training rows only - the held-out cell type never influences its own prediction.

Scores are *pooled* over folds: all out-of-fold predictions are collected first, then per gene
``r2 = 1 - sum (y - yhat)^2 / sum (y - mean(y))^2`` and ``rmse = sqrt(mean (y - yhat)^2)``
(with leave-one-out each fold has one row, so per-fold r2 would not exist). Scores weight each
cell type equally, also when the fit uses sample weights.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control
from sklearn.model_selection import KFold, LeaveOneGroupOut, LeaveOneOut
from threadpoolctl import threadpool_limits

from ephys2expr.errors import InputError
from ephys2expr.solver import PENALTIES, MultiGeneElasticNet, alpha_grid, standardize_stats

log = logging.getLogger("ephys2expr")

CV_SCHEMES = ("loo", "kfold", "group")
WEIGHTINGS = ("none", "cells")
BASELINES = ("mean", "ols", "class")


@dataclass
class TrainSettings:
    """The ``train:`` section of ``params.yaml`` (see there for the meaning of each key)."""

    penalty: str = "lasso"
    l1_ratio: float = 0.5
    alpha: float | str = "auto"
    n_alphas: int = 30
    alpha_min: float = 1e-3
    alpha_max: float = 10.0
    inner_folds: int = 5
    cv: str = "loo"
    n_folds: int = 5
    seed: int = 0
    sample_weight: str = "none"
    n_permutations: int = 100
    null_stop_after: int = 10
    fdr_q: float = 0.1
    chunk_size: int = 8192
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = "params.yaml train"
        if self.penalty not in PENALTIES:
            raise InputError(f"{where}.penalty: {self.penalty!r} is not one of {PENALTIES}")
        if isinstance(self.alpha, str):
            if self.alpha.strip().lower() == "auto":
                self.alpha = "auto"
            else:
                try:
                    self.alpha = float(self.alpha)
                except ValueError:
                    raise InputError(
                        f"{where}.alpha: {self.alpha!r} is not a number or 'auto'"
                    ) from None
        if self.alpha != "auto" and not (np.isfinite(self.alpha) and self.alpha >= 0):
            raise InputError(f"{where}.alpha: {self.alpha} must be a non-negative number")
        if self.penalty == "ridge" and self.alpha != "auto" and self.alpha <= 0:
            raise InputError(f"{where}.alpha: ridge needs alpha > 0")
        if self.penalty == "elasticnet" and not 0.0 < self.l1_ratio <= 1.0:
            raise InputError(f"{where}.l1_ratio: {self.l1_ratio} is not in (0, 1]")
        if self.cv not in CV_SCHEMES:
            raise InputError(f"{where}.cv: {self.cv!r} is not one of {CV_SCHEMES}")
        if self.sample_weight not in WEIGHTINGS:
            raise InputError(
                f"{where}.sample_weight: {self.sample_weight!r} is not one of {WEIGHTINGS}"
            )
        if self.null_stop_after < 0:
            raise InputError(f"{where}.null_stop_after: {self.null_stop_after} is negative")
        if self.n_permutations < 0:
            raise InputError(f"{where}.n_permutations: {self.n_permutations} is negative")
        if not 0 < self.fdr_q < 1:
            raise InputError(f"{where}.fdr_q: {self.fdr_q} is not in (0, 1)")
        if self.inner_folds < 2 or self.n_folds < 2:
            raise InputError(f"{where}: inner_folds and n_folds must be >= 2")
        alpha_grid(self.alpha_max, self.alpha_min, self.n_alphas)  # validates the path

    @property
    def alphas(self) -> np.ndarray:
        return alpha_grid(self.alpha_max, self.alpha_min, self.n_alphas)

    def estimator(self, alpha=None, n_rows: int | None = None) -> MultiGeneElasticNet:
        """A :class:`MultiGeneElasticNet` with these settings (``alpha`` overrides).

        ``n_rows`` (rows the estimator will be fitted on) shrinks its gene block when the
        inner CV's (genes x alphas x validation rows) temporaries would exceed ~128 MB - only
        with thousands of rows (per-cell training); results do not depend on the block.
        """
        chunk = self.chunk_size
        if n_rows:
            n_va = -(-n_rows // self.inner_folds)
            chunk = min(chunk, max(64, (1 << 24) // (self.n_alphas * n_va)))
        return MultiGeneElasticNet(
            penalty=self.penalty,
            alpha=self.alpha if alpha is None else alpha,
            l1_ratio=self.l1_ratio,
            alphas=self.alphas,
            inner_cv=self.inner_folds,
            random_state=self.seed,
            chunk_size=chunk,
        )

    def as_dict(self) -> dict:
        keys = ("penalty", "l1_ratio", "alpha", "n_alphas", "alpha_min", "alpha_max",
                "inner_folds", "cv", "n_folds", "seed", "sample_weight", "n_permutations",
                "null_stop_after", "fdr_q")  # fmt: skip
        return {k: getattr(self, k) for k in keys}


# --------------------------------------------------------------------------------------
# folds, weights, scores
# --------------------------------------------------------------------------------------


def outer_folds(
    n: int, cv: str, n_folds: int = 5, groups=None, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Outer (train, test) index pairs: leave-one-out, shuffled k-fold or leave-one-group-out."""
    dummy = np.zeros(n)
    if cv == "loo":
        folds = list(LeaveOneOut().split(dummy))
    elif cv == "kfold":
        if n_folds > n:
            raise InputError(f"params.yaml train.n_folds: {n_folds} folds for {n} cell types")
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
            raise InputError(f"cv {cv!r}: a fold has only {len(tr)} training cell types")
    return folds


def pooled_scores(Y: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene r2 and RMSE over all rows (types) at once; r2 is NaN for a constant gene."""
    ss_res = ((Y - pred) ** 2).sum(axis=0)
    ss_tot = ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.nan)
    rmse = np.sqrt(ss_res / Y.shape[0])
    return r2, rmse


# --------------------------------------------------------------------------------------
# nested cross-validation of the model
# --------------------------------------------------------------------------------------


@dataclass
class CVResult:
    """Out-of-fold predictions and the choices made in each outer fold.

    Attributes
    ----------
    oof : ndarray, shape (n_types, n_genes)
    fold_alpha : ndarray, shape (n_folds, n_genes)
        The alpha each fold used for each gene (chosen by the inner CV for ``auto``).
    fold_nonzero : ndarray, shape (n_folds, n_genes)
    seconds : float
    """

    oof: np.ndarray
    fold_alpha: np.ndarray
    fold_nonzero: np.ndarray
    seconds: float


def _timer_log(what: str, done: int, total: int, start: float) -> None:
    elapsed = time.perf_counter() - start
    eta = elapsed / done * (total - done) if done else float("nan")
    log.info("%s %d/%d (%.1f s elapsed, about %.0f s left)", what, done, total, elapsed, eta)


def nested_cv(
    X, Y, folds, settings: TrainSettings, weights=None, fold_alpha=None, verbose: bool = True
) -> CVResult:
    """Out-of-fold predictions of the full procedure (scaling + alpha choice + fit) per fold.

    Parameters
    ----------
    X : ndarray, shape (n_types, n_features)
    Y : ndarray, shape (n_types, n_genes)
    folds : list of (train, test) index arrays
    settings : TrainSettings
    weights : ndarray, shape (n_types,), optional
    fold_alpha : ndarray, shape (n_folds, n_genes), optional
        Use these alphas instead of choosing them (how the permutation null reuses the
        real-data choices).
    verbose : bool
        Log each outer fold (off inside gene chunks: the chunk loop logs instead).
    """
    start = time.perf_counter()
    n, n_genes = Y.shape
    oof = np.empty((n, n_genes))
    alphas_used = np.empty((len(folds), n_genes))
    nonzero = np.empty((len(folds), n_genes), dtype=np.int64)
    for k, (tr, te) in enumerate(folds):
        alpha = None if fold_alpha is None else fold_alpha[k]
        est = settings.estimator(alpha, len(tr))
        est.fit(X[tr], Y[tr], None if weights is None else weights[tr])
        oof[te] = est.predict(X[te])
        alphas_used[k] = est.alpha_
        nonzero[k] = (est.coef_ != 0).sum(axis=1)
        if fold_alpha is None and verbose:
            _timer_log("nested CV: outer fold", k + 1, len(folds), start)
    return CVResult(oof, alphas_used, nonzero, time.perf_counter() - start)


# --------------------------------------------------------------------------------------
# baselines on the same folds
# --------------------------------------------------------------------------------------


def baseline_predictions(X, Y, folds, weights=None, classes=None) -> dict[str, np.ndarray]:
    """Out-of-fold predictions of the baselines, each (n_types, n_genes).

    ``mean``: the (weighted) mean of the training types - what the model predicts when all
    coefficients are zero. ``ols``: ordinary least squares on all features (the original
    project's comparison; minimum-norm solution if the fold is rank-deficient). ``class``:
    the (weighted) mean of the training types of the held-out type's broad class (Exc/Inh),
    the overall training mean when the fold has none of that class.
    """
    n, n_genes = Y.shape
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    out = {name: np.empty((n, n_genes)) for name in BASELINES}
    if classes is None:
        classes = np.zeros(n, dtype=object)
    classes = np.asarray(classes)
    for tr, te in folds:
        wt = w[tr]
        ybar = wt @ Y[tr] / wt.sum()
        out["mean"][te] = ybar
        mean, scale = standardize_stats(X[tr])
        Xs = (X[tr] - mean) / scale
        xbar = wt @ Xs / wt.sum()
        sw = np.sqrt(wt)[:, None]
        coef, *_ = np.linalg.lstsq((Xs - xbar) * sw, (Y[tr] - ybar) * sw, rcond=None)
        out["ols"][te] = ybar + ((X[te] - mean) / scale - xbar) @ coef
        # once per class of the held-out rows, not per row (thousands of per-cell rows)
        for c in dict.fromkeys(classes[te].tolist()):
            rows = te[classes[te] == c]
            same = tr[classes[tr] == c]
            if len(same):
                out["class"][rows] = w[same] @ Y[same] / w[same].sum()
            else:
                out["class"][rows] = ybar
    return out


# --------------------------------------------------------------------------------------
# permutation null
# --------------------------------------------------------------------------------------


@dataclass
class NullResult:
    """Per-gene permutation p-values.

    Attributes
    ----------
    p_value : ndarray, shape (n_genes,)
        Sequential Monte Carlo p-value (see :func:`permutation_null`).
    null_r2_mean : ndarray, shape (n_genes,)
        Mean out-of-fold r2 over the permutations the gene went through.
    n_permutations : ndarray of int, shape (n_genes,)
        Permutations each gene went through.
    n_fits : int
        Gene x permutation cross-validations run in total.
    seconds : float
    """

    p_value: np.ndarray
    null_r2_mean: np.ndarray
    n_permutations: np.ndarray
    n_fits: int
    seconds: float


def permutation_null(
    X, Y, folds, fold_alpha, observed_r2, settings: TrainSettings, weights=None, stop_after=10,
    verbose: bool = True,
) -> NullResult:  # fmt: skip
    """Permute cell types (rows of ``Y``) against the features and rerun the same outer CV.

    Two things keep this affordable:

    * the inner alpha search is NOT rerun: each permutation reuses, fold by fold, the alpha
      every gene got on the real data (``fold_alpha`` from :func:`nested_cv`), so one
      permutation costs one single-alpha fit per fold instead of a nested CV. (This makes the
      null slightly optimistic for the permuted fits - they get an alpha tuned on other data -
      only if that alpha overfits; genes whose alpha zeroes every coefficient get exactly the
      mean prediction under every permutation, hence p = 1 under leave-one-out.)
    * sequential Monte Carlo p-values (Besag & Clifford 1991): a gene stops being permuted
      once ``stop_after`` permutations have reached its observed r2, with p = h / L (h
      exceedances after L permutations); genes that never get there use all permutations,
      p = (1 + h) / (1 + n_permutations). Clearly null genes stop after a few permutations,
      so the cost goes to the genes where the p-value matters. ``stop_after=0`` disables it.

    Folds, weights (they stay with the feature rows) and per-fold standardisation are
    unchanged. Every gene sees the same sequence of permutations (seeded): the sequence is
    drawn in full whatever genes are still active, so a gene's p-value does not depend on the
    other genes it is computed with (what lets gene chunks run anywhere).
    """
    start = time.perf_counter()
    n, n_genes = Y.shape
    B = settings.n_permutations
    rng = np.random.default_rng(settings.seed)
    observed = np.nan_to_num(np.asarray(observed_r2, dtype=float), nan=np.inf)
    ge = np.zeros(n_genes, dtype=np.int64)
    used = np.zeros(n_genes, dtype=np.int64)
    null_sum = np.zeros(n_genes)
    active = np.flatnonzero(np.isfinite(observed))
    fits = 0
    for b in range(B):
        perm = rng.permutation(n)
        if active.size == 0:
            continue
        Yp = Y[perm][:, active]
        cv = nested_cv(X, Yp, folds, settings, weights, fold_alpha=fold_alpha[:, active])
        r2, _ = pooled_scores(Yp, cv.oof)
        fits += active.size
        used[active] += 1
        null_sum[active] += r2
        # tiny slack so that exact ties (e.g. identical mean-only predictions) count as >=
        ge[active] += r2 >= observed[active] - 1e-12
        if stop_after > 0:
            active = active[ge[active] < stop_after]
        if verbose and ((b + 1) % max(1, B // 10) == 0 or b + 1 == B):
            _timer_log(f"permutation null ({active.size} genes still permuted):", b + 1, B, start)
    stopped = (stop_after > 0) & (ge >= stop_after)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(stopped, ge / np.maximum(used, 1), (1.0 + ge) / (1.0 + B))
        null_mean = np.where(used > 0, null_sum / np.maximum(used, 1), np.nan)
    p = np.where(np.isfinite(observed), np.minimum(p, 1.0), 1.0)
    return NullResult(p, null_mean, used, fits, time.perf_counter() - start)


def bh_qvalues(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), via scipy."""
    p = np.asarray(p, dtype=float)
    if p.size == 0:
        return p
    return false_discovery_control(p, method="bh")


# --------------------------------------------------------------------------------------
# everything together
# --------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    """All outputs of :func:`train_and_evaluate`.

    Attributes
    ----------
    per_gene : pandas.DataFrame
        Indexed by gene; scores of the model and of each baseline, ``beats_<baseline>``
        booleans, chosen alpha, non-zero coefficients, p/q values.
    oof : pandas.DataFrame
        Genes x cell types, out-of-fold predictions of the model.
    final : MultiGeneElasticNet
        Refitted on all cell types (alpha chosen by inner CV over all types for ``auto``).
    metrics : dict
    """

    per_gene: pd.DataFrame
    oof: pd.DataFrame
    final: MultiGeneElasticNet
    metrics: dict


def _summary(r2: np.ndarray, rmse: np.ndarray) -> dict:
    ok = r2[np.isfinite(r2)]
    q = np.quantile(ok, [0.1, 0.25, 0.5, 0.75, 0.9]) if ok.size else [np.nan] * 5
    return {
        "r2_median": float(q[2]),
        "r2_mean": float(ok.mean()) if ok.size else float("nan"),
        "r2_q10": float(q[0]),
        "r2_q25": float(q[1]),
        "r2_q75": float(q[3]),
        "r2_q90": float(q[4]),
        "frac_r2_gt_0.1": float((ok > 0.1).mean()) if ok.size else 0.0,
        "frac_r2_gt_0.5": float((ok > 0.5).mean()) if ok.size else 0.0,
        "rmse_median": float(np.median(rmse)),
        "rmse_mean": float(rmse.mean()),
    }


def _rounded(obj, digits: int = 6):
    """Round floats in a nested dict (metrics: stable, readable diffs)."""
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, float):
        return round(obj, digits)
    return obj


@dataclass
class GeneChunkResult:
    """Everything one chunk of genes contributes (see :func:`train_gene_chunk`).

    Attributes
    ----------
    columns : dict of str to ndarray, shape (n_genes_in_chunk,)
        Per-gene columns of the final table that depend on the gene alone.
    oof : ndarray, shape (n_types, n_genes_in_chunk) or None
    final : MultiGeneElasticNet
        The refit of these genes on all rows.
    null : NullResult or None
    seconds : dict
        Time each step took on the worker.
    """

    columns: dict
    oof: np.ndarray | None
    final: MultiGeneElasticNet
    null: NullResult | None
    seconds: dict


def train_gene_chunk(
    X, Y, folds, settings: TrainSettings, weights=None, classes=None, keep_oof: bool = True,
    verbose: bool = True,
) -> GeneChunkResult:  # fmt: skip
    """Nested CV, baselines, final refit and permutation null of one chunk of genes.

    Genes are independent given the shared design ``X``, the seeded outer and inner folds and
    the seeded permutation sequence, so the results of consecutive chunks concatenated equal
    the results of all genes at once. Only Benjamini-Hochberg and the summaries couple genes;
    they are computed after all chunks are gathered (:func:`train_and_evaluate`).

    Parameters
    ----------
    X : ndarray, shape (n_types, n_features)
    Y : ndarray, shape (n_types, n_genes_in_chunk)
    folds, settings, weights, classes : as in :func:`train_and_evaluate`.
    keep_oof : bool
        Return the out-of-fold predictions (n_types x genes: with per-cell rows that is the
        size of the input, so callers streaming many cells drop or write it per chunk).
    verbose : bool
        Log per outer fold / permutation (the whole set in one chunk, as before chunking).
    """
    t0 = time.perf_counter()
    Y = np.ascontiguousarray(Y, dtype=float)
    cv = nested_cv(X, Y, folds, settings, weights, verbose=verbose)
    r2, rmse = pooled_scores(Y, cv.oof)
    t1 = time.perf_counter()
    base = baseline_predictions(X, Y, folds, weights, classes)
    base_scores = {name: pooled_scores(Y, pred) for name, pred in base.items()}
    del base
    t2 = time.perf_counter()
    final = settings.estimator(n_rows=X.shape[0]).fit(X, Y, weights)
    train_r2, _ = pooled_scores(Y, final.predict(X))
    t3 = time.perf_counter()
    if verbose:
        log.info("baselines (%.1f s) and final refit (%.1f s) done", t2 - t1, t3 - t2)
    cols = {
        "cv_r2": r2,
        "cv_rmse": rmse,
        "train_r2": train_r2,
        "alpha": final.alpha_,
        "fold_alpha_median": np.median(cv.fold_alpha, axis=0),
        "n_nonzero": (final.coef_ != 0).sum(axis=1),
        "y_mean": Y.mean(axis=0),
        "y_sd": Y.std(axis=0),
    }
    for name, (b_r2, b_rmse) in base_scores.items():
        cols[f"{name}_cv_r2"] = b_r2
        cols[f"{name}_cv_rmse"] = b_rmse
    null = None
    if settings.n_permutations > 0:
        null = permutation_null(
            X, Y, folds, cv.fold_alpha, r2, settings, weights,
            stop_after=settings.null_stop_after, verbose=verbose,
        )  # fmt: skip
    seconds = {
        "nested_cv": cv.seconds,
        "baselines": t2 - t1,
        "final_fit": t3 - t2,
        "permutation_null": null.seconds if null is not None else 0.0,
        "chunk": time.perf_counter() - t0,
    }
    return GeneChunkResult(cols, cv.oof if keep_oof else None, final, null, seconds)


def _train_chunk_task(X, Y, folds, settings, weights, classes, keep_oof, verbose):
    """Module-level (picklable) entry point of one gene chunk, BLAS limited to one thread."""
    with threadpool_limits(limits=1, user_api="blas"):
        return train_gene_chunk(X, Y, folds, settings, weights, classes, keep_oof, verbose)


def _concat_final(parts: list[MultiGeneElasticNet]) -> MultiGeneElasticNet:
    """One fitted estimator from the per-chunk refits (same attributes as one big fit)."""
    if len(parts) == 1:
        return parts[0]
    est = parts[0]
    out = MultiGeneElasticNet(**{k: getattr(est, k) for k in (
        "penalty", "alpha", "l1_ratio", "alphas", "inner_cv", "random_state", "standardize",
        "tol", "max_iter", "chunk_size")})  # fmt: skip
    for attr in ("coef_", "intercept_", "coef_std_", "intercept_std_", "alpha_",
                 "alpha_index_", "n_iter_", "converged_", "cv_mse_"):  # fmt: skip
        if hasattr(est, attr):
            setattr(out, attr, np.concatenate([getattr(p, attr) for p in parts]))
    out.mean_, out.scale_ = est.mean_, est.scale_
    auto = isinstance(est.alpha, str)
    out.alphas_ = est.alphas_ if auto else np.unique(out.alpha_)[::-1]
    return out


def _concat_null(parts: list[NullResult], seconds: float) -> NullResult:
    return NullResult(
        np.concatenate([p.p_value for p in parts]),
        np.concatenate([p.null_r2_mean for p in parts]),
        np.concatenate([p.n_permutations for p in parts]),
        int(sum(p.n_fits for p in parts)),
        seconds,
    )


class ParquetTargets:
    """Genes x cell types (or cells) read from Parquet a chunk of genes at a time.

    For training sets too large to hold at once (thousands of per-cell rows x 45,000
    genes): :func:`train_and_evaluate` reads one chunk of genes (a batch of Parquet rows)
    per task instead of the whole table.

    Parameters
    ----------
    path : path-like
        Parquet with one row per gene: a ``gene`` column (or index) and one float column per
        cell type / cell.
    columns : list of str
        The cell-type / cell columns, in the order of the features' rows.
    """

    def __init__(self, path, columns: list[str]):
        import pyarrow.parquet as pq

        self.path = path
        self.columns = list(columns)
        self._file = pq.ParquetFile(path)
        names = self._file.schema_arrow.names
        missing = [c for c in ["gene", *self.columns] if c not in names]
        if missing:
            raise InputError(f"{path}: no column '{missing[0]}'")
        self.index = pd.Index(
            self._file.read(columns=["gene"]).column("gene").to_pylist(), name="gene"
        )

    def __len__(self) -> int:
        return len(self.index)

    def iter_chunks(self, size: int):
        """Yield arrays of shape (genes in chunk, columns), ``size`` genes at a time."""
        size = len(self) if size <= 0 else size
        for batch in self._file.iter_batches(batch_size=size, columns=self.columns):
            yield np.column_stack(
                [batch.column(i).to_numpy(zero_copy_only=False) for i in range(len(self.columns))]
            )


def train_and_evaluate(
    features: pd.DataFrame,
    targets,
    types: pd.DataFrame,
    settings: TrainSettings,
    executor=None,
    gene_chunk: int = 0,
    keep_oof: bool = True,
) -> TrainResult:
    """Nested CV, baselines, permutation null and the final refit.

    Parameters
    ----------
    features : DataFrame, cell types x features (original units)
    targets : DataFrame (genes x cell types, log2 expression, columns in ``features`` order)
        or :class:`ParquetTargets` (read chunk by chunk)
    types : DataFrame indexed by cell type with ``broad_type`` and ``weight``
    settings : TrainSettings
    executor : ephys2expr.executor.Executor, optional
        Where the gene chunks run (default: in this process).
    gene_chunk : int
        Genes per chunk (0 = all genes in one chunk). Results do not depend on it.
    keep_oof : bool
        Gather the out-of-fold predictions (``TrainResult.oof``; None otherwise).

    Notes
    -----
    BLAS is limited to one thread meanwhile: the matrix products here are small (tens of
    rows), and OpenBLAS threads spinning on them cost more CPU than they save and compete
    with the solver's own numba threads (measured: the per-fold set-up was ~5x slower).
    """
    from ephys2expr.executor import Executor, ExecutorSettings, chunk_slices

    executor = executor or Executor(ExecutorSettings())
    t0 = time.perf_counter()
    X = features.to_numpy(dtype=float)
    n = X.shape[0]
    genes = targets.index.copy()
    n_genes = len(genes)
    weights = (
        types.loc[features.index, "weight"].to_numpy(dtype=float)
        if settings.sample_weight == "cells"
        else None
    )
    classes = types.loc[features.index, "broad_type"].to_numpy()
    folds = outer_folds(n, settings.cv, settings.n_folds, classes, settings.seed)
    slices = chunk_slices(n_genes, gene_chunk)
    log.info(
        "training %d genes on %d cell types x %d features: %s, alpha=%s, %s outer CV "
        "(%d folds); %d gene chunk(s), %s executor",
        n_genes, n, X.shape[1], settings.penalty, settings.alpha, settings.cv, len(folds),
        len(slices), executor.settings.kind,
    )  # fmt: skip
    verbose = len(slices) == 1 and executor.client is None
    if isinstance(targets, pd.DataFrame):
        blocks = (targets.iloc[sl].to_numpy(dtype=float) for sl in slices)
    else:
        blocks = targets.iter_chunks(gene_chunk)
    tasks = (
        (X, np.ascontiguousarray(b.T), folds, settings, weights, classes, keep_oof, verbose)
        for b in blocks
    )
    parts = list(
        executor.map_ordered(_train_chunk_task, tasks, what="gene chunks", total=len(slices))
    )
    return _gather(parts, features, genes, n, folds, settings, t0)


def _gather(parts, features, genes, n, folds, settings: TrainSettings, t0) -> TrainResult:
    """Concatenate the chunks, then the gene-coupling steps: BH q-values and summaries."""
    n_genes = len(genes)
    per_gene = pd.DataFrame(index=genes)
    for col in parts[0].columns:
        per_gene[col] = np.concatenate([p.columns[col] for p in parts])
    final = _concat_final([p.final for p in parts])
    r2 = per_gene["cv_r2"].to_numpy()
    rmse = per_gene["cv_rmse"].to_numpy()
    train_r2 = per_gene["train_r2"].to_numpy()
    base_scores = {
        name: (per_gene[f"{name}_cv_r2"].to_numpy(), per_gene[f"{name}_cv_rmse"].to_numpy())
        for name in BASELINES
    }
    for name, (b_r2, _) in base_scores.items():
        # a constant gene (NaN r2) beats nothing
        per_gene[f"beats_{name}"] = np.nan_to_num(r2, nan=-np.inf) > np.nan_to_num(b_r2, nan=np.inf)
    # seconds: summed over chunks (worker time; equal to wall time in-process)
    secs = {k: float(sum(p.seconds[k] for p in parts)) for k in parts[0].seconds}

    null = None
    if settings.n_permutations > 0:
        null = _concat_null([p.null for p in parts], secs["permutation_null"])
        per_gene["p_value"] = null.p_value
        per_gene["q_value"] = bh_qvalues(null.p_value)  # after gathering: BH couples genes
        per_gene["null_r2_mean"] = null.null_r2_mean
        per_gene["n_permutations"] = null.n_permutations
        per_gene["significant"] = per_gene["q_value"].to_numpy() < settings.fdr_q

    n_features = features.shape[1]
    metrics = {
        "n_genes": int(n_genes),
        "n_types": int(n),
        "n_features": int(n_features),
        "n_folds": len(folds),
        "model": _summary(r2, rmse),
        "baselines": {name: _summary(*sc) for name, sc in base_scores.items()},
        "genes_beating": {name: int(per_gene[f"beats_{name}"].sum()) for name in BASELINES},
        "genes_beating_all_baselines": int(
            per_gene[[f"beats_{b}" for b in BASELINES]].all(axis=1).sum()),
        "model_median_r2_beats": {
            name: bool(np.nanmedian(r2) > np.nanmedian(sc[0]))
            for name, sc in base_scores.items()},
        "final_model": {
            "train_r2_median": float(np.nanmedian(train_r2)),
            "alpha_median": float(np.median(final.alpha_)),
            "nonzero_median": float(np.median(per_gene["n_nonzero"])),
            "genes_all_zero": int((per_gene["n_nonzero"] == 0).sum()),
            "genes_not_converged": int((~final.converged_).sum()),
        },
        "seconds": {
            "nested_cv": secs["nested_cv"],
            "baselines": secs["baselines"],
            "final_fit": secs["final_fit"],
            "permutation_null": secs["permutation_null"],
            "total": time.perf_counter() - t0,
        },
    }  # fmt: skip
    if settings.n_permutations > 0:
        q = per_gene["q_value"].to_numpy()
        metrics["null"] = {
            "n_permutations": settings.n_permutations,
            "gene_permutations_run": int(null.n_fits),
            "genes_with_all_permutations": int(
                (null.n_permutations == settings.n_permutations).sum()),
            "genes_q_below_fdr": int((q < settings.fdr_q).sum()),
            "genes_p_below_0.05": int((per_gene["p_value"] < 0.05).sum()),
            "genes_significant_and_beating_all": int(
                (per_gene["significant"]
                 & per_gene[[f"beats_{b}" for b in BASELINES]].all(axis=1)).sum()),
        }  # fmt: skip
    oof = None
    if parts[0].oof is not None:
        oof_arr = np.concatenate([p.oof for p in parts], axis=1)
        oof = pd.DataFrame(oof_arr.T, index=genes.copy(), columns=features.index.copy())
    return TrainResult(per_gene, oof, final, _rounded(metrics))


__all__ = [
    "BASELINES",
    "CVResult",
    "GeneChunkResult",
    "ParquetTargets",
    "NullResult",
    "TrainResult",
    "TrainSettings",
    "baseline_predictions",
    "bh_qvalues",
    "nested_cv",
    "outer_folds",
    "permutation_null",
    "pooled_scores",
    "load_training_inputs",
    "train_and_evaluate",
    "train_gene_chunk",
]


# --------------------------------------------------------------------------------------
# reading the prepared inputs
# --------------------------------------------------------------------------------------


def load_training_inputs(features_path, targets_path, types_path, stream: bool = False):
    """Read and check prepare's three training tables (see CONTRIBUTING.md).

    Returns ``(features, targets, types)``: types x features, genes x types (columns in the
    features' row order) and the type metadata indexed like ``features``. Any mismatch is an
    :class:`InputError` naming the file and the column or value. With ``stream=True`` the
    targets come back as a :class:`ParquetTargets` (read a gene chunk at a time later; their
    values are not checked here).
    """
    features = pd.read_parquet(features_path)
    types = pd.read_parquet(types_path)
    if stream:
        targets = ParquetTargets(targets_path, list(features.index))
        if features.empty or len(targets) == 0:
            raise InputError(f"{features_path if features.empty else targets_path}: empty table")
        _check_features(features, features_path)
        return features.astype(float), targets, _check_types(types, features, types_path)
    targets = pd.read_parquet(targets_path)
    if features.empty or targets.empty:
        raise InputError(f"{features_path if features.empty else targets_path}: empty table")
    _check_features(features, features_path)
    missing = [t for t in features.index if t not in targets.columns]
    if missing:
        raise InputError(f"{targets_path}: no column for cell type '{missing[0]}'")
    targets = targets[list(features.index)]
    if not all(pd.api.types.is_numeric_dtype(targets[c]) for c in targets.columns):
        raise InputError(f"{targets_path}: non-numeric expression values")
    if targets.isna().to_numpy().any():
        gene = targets.index[targets.isna().any(axis=1)][0]
        raise InputError(f"{targets_path}: missing expression for gene '{gene}'")
    if targets.index.has_duplicates:
        raise InputError(
            f"{targets_path}: duplicate gene '{targets.index[targets.index.duplicated()][0]}'"
        )
    return features.astype(float), targets.astype(float), _check_types(types, features, types_path)


def _check_features(features: pd.DataFrame, features_path) -> None:
    for col in features.columns:
        if not pd.api.types.is_numeric_dtype(features[col]):
            raise InputError(f"{features_path}: column '{col}' is not numeric")
        if features[col].isna().any():
            bad = features.index[features[col].isna()][0]
            raise InputError(f"{features_path}: column '{col}' is missing for '{bad}'")
    if features.index.has_duplicates:
        raise InputError(
            f"{features_path}: duplicate cell type "
            f"'{features.index[features.index.duplicated()][0]}'"
        )


def _check_types(types: pd.DataFrame, features: pd.DataFrame, types_path) -> pd.DataFrame:
    for col in ("broad_type", "weight"):
        if col not in types.columns:
            raise InputError(f"{types_path}: missing column '{col}'")
    absent = [t for t in features.index if t not in types.index]
    if absent:
        raise InputError(f"{types_path}: no row for cell type '{absent[0]}'")
    types = types.loc[features.index]
    w = types["weight"].to_numpy(dtype=float)
    if not np.all(np.isfinite(w) & (w > 0)):
        bad = types.index[~(np.isfinite(w) & (w > 0))][0]
        raise InputError(f"{types_path}: column 'weight' is not a positive number for '{bad}'")
    return types
