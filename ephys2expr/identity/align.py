"""Batch alignment: move a batch of cells from another lab onto the training cells.

A lab records the same cell types with systematically different numbers (docs/transfer.md:
AP half-width 0.80 vs 1.56 ms, rmp -75 vs -66 mV between Allen and Scala), so a per-cell
classifier trained in one lab is confidently wrong in another. A per-batch z-score removes
such offsets but assumes the batch holds the training cells' mix of classes: a batch of
interneurons only is pulled towards the training mean and half of it is called excitatory.

The method here is composition-aware. The training cells define class-conditional Gaussians
(per class a mean, one pooled within-class covariance; features ``log1p``-transformed where
skewed, :data:`LOG_FEATURES`, and standardised by the training mean and SD). The batch is
modelled as ``z = u + d`` with ``u`` drawn from that mixture with *unknown* class priors and
``d`` a per-feature shift. EM estimates both: the E-step gives each cell's class
responsibilities (restricted to the classes a user says are possible), the M-step the
priors (the batch's composition) and the shift in closed form, with a weak ridge pulling
the shift to 0 (:data:`RIDGE` pseudo-cells), so a batch like the training cells stays where
it is. EM starts from no shift and the training priors: a one-class batch converges to the
nearest consistent explanation instead of to the training mix (what a z-score start does).
``em_scale`` also fits a per-feature scale (the residual SD over the pooled within-class
SD, in [0.5, 2]); ``em_mixed`` starts from the z-score's shift only (assumes a mixed batch).
Methods: :data:`METHODS`; ``auto`` is ``em_shift`` when something is known of the batch's
classes and no alignment otherwise (:func:`auto_method`): measured on six foreign sets
(docs/transfer.md), EM without a known class did not fix the Exc/Inh calls of the mixed Allen
batches (the likelihood prefers an all-interneuron explanation of them) and called up to
two thirds of one-class interneuron batches excitatory.

Shifts are reported in training-SD units of the transformed feature (log1p for
:data:`LOG_FEATURES`): a shift of +1 on ``aphw`` means the batch's half-widths are one
training SD (of log1p ms) above those of training cells of the same class.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ephys2expr.errors import InputError
from ephys2expr.taxonomy import type_group

# families of excitatory neurons (the rest of a per-cell store's families are GABAergic)
EXC_FAMILIES = ("IT", "ET", "CT", "NP", "L6b", "L6 IT", "L5 ET", "L6 CT", "L5/6 NP")
_EXC_WORDS = ("exc", "excitatory", "glutamatergic", "spiny", "pyramidal")
_INH_WORDS = ("inh", "inhibitory", "gabaergic", "aspiny", "interneuron")
# families compatible with an interneuron Cre line's group (taxonomy.type_group)
CRE_FAMILIES = {
    "Pvalb": ("Pvalb",),
    "Sst": ("Sst",),
    "Vip": ("Vip", "Sncg"),
    "Ndnf": ("Lamp5", "Vip", "Sncg"),
}

# features log1p-transformed before the Gaussians (right-skewed, positive)
LOG_FEATURES = ("rin", "tau", "cap", "rheo", "maxfreq", "avg_isi", "f_i_curve_slope")
METHODS = ("none", "auto", "zscore", "em_shift", "em_scale", "em_mixed")
AUTO = "em_shift"
RIDGE = 10.0  # shift prior: as if this many cells had no shift (in SD units)
SHRINK = 0.1  # within-class covariance shrunk this far towards its diagonal
POOL_COUNT = 30.0  # a class's covariance is shrunk towards the pooled one as if by this many cells
PRIOR_COUNT = 1.0  # Dirichlet pseudo-count per allowed class in the prior update
MAX_ITER = 200
MIN_CELLS = 20  # a smaller batch is not aligned: its mean alone is off by ~0.2 SD
MAX_FIT_CELLS = 2000  # larger batches are fitted on a seeded subsample of this many cells
TOL = 1e-5  # stop when the shift moves less than this (SD units)
SCALE_BOUNDS = (0.5, 2.0)


def transform(X: np.ndarray, features) -> np.ndarray:
    """Features in the alignment's space: log1p of :data:`LOG_FEATURES` (clipped at 0)."""
    Z = np.array(X, dtype=float, copy=True)
    for j, f in enumerate(features):
        if f in LOG_FEATURES:
            Z[:, j] = np.log1p(np.maximum(Z[:, j], 0.0))
    return Z


def inverse_transform(Z: np.ndarray, features) -> np.ndarray:
    """Back from :func:`transform`'s space to the features' own units."""
    X = np.array(Z, dtype=float, copy=True)
    for j, f in enumerate(features):
        if f in LOG_FEATURES:
            X[:, j] = np.expm1(X[:, j])
    return X


@dataclass
class ClassGaussians:
    """Class-conditional Gaussians of the training cells in the standardised space.

    Attributes
    ----------
    features, classes : list of str
    center, scale : ndarray (p,)
        Training mean and SD of the transformed features.
    means : ndarray (K, p)
        Class means (standardised).
    cov : ndarray (K, p, p)
        Per class the within-class covariance (standardised), shrunk towards the pooled one
        (weight ``POOL_COUNT / (n_k + POOL_COUNT)``) and by :data:`SHRINK` to its diagonal.
    priors : ndarray (K,)
        Training class shares.
    """

    features: list
    classes: list
    center: np.ndarray
    scale: np.ndarray
    means: np.ndarray
    cov: np.ndarray
    priors: np.ndarray

    @classmethod
    def fit(cls, X, labels, features, classes=None) -> ClassGaussians:
        """From training rows ``X`` (features in their units, no NaN) and their ``labels``."""
        features = list(features)
        Z = transform(X, features)
        center = Z.mean(axis=0)
        scale = Z.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        S = (Z - center) / scale
        labels = np.asarray(labels).astype(str)
        classes = sorted(set(labels)) if classes is None else [str(c) for c in classes]
        K, p = len(classes), len(features)
        means, priors = np.zeros((K, p)), np.zeros(K)
        resid = np.zeros_like(S)
        for k, c in enumerate(classes):
            rows = labels == c
            priors[k] = rows.sum()
            if rows.any():
                means[k] = S[rows].mean(axis=0)
                resid[rows] = S[rows] - means[k]
        pooled = resid.T @ resid / max(len(S) - K, 1)
        cov = np.empty((K, p, p))
        for k, c in enumerate(classes):
            r = resid[labels == c]
            w = POOL_COUNT / (len(r) + POOL_COUNT)
            own = r.T @ r / max(len(r) - 1, 1)
            ck = (1 - w) * own + w * pooled
            cov[k] = (1 - SHRINK) * ck + SHRINK * np.diag(np.diag(ck)) + 1e-6 * np.eye(p)
        return cls(features, classes, center, scale, means, cov, priors / priors.sum())

    def standardise(self, X) -> np.ndarray:
        """Raw features (the model's order) -> standardised transformed features."""
        return (transform(X, self.features) - self.center) / self.scale

    def raw(self, S) -> np.ndarray:
        """Standardised transformed features -> raw features."""
        return inverse_transform(S * self.scale + self.center, self.features)

    def subset(self, idx) -> ClassGaussians:
        """The marginal Gaussians of the features ``idx`` (positions)."""
        idx = np.asarray(idx)
        return ClassGaussians(
            [self.features[i] for i in idx],
            self.classes,
            self.center[idx],
            self.scale[idx],
            self.means[:, idx],
            self.cov[:, idx][:, :, idx],
            self.priors,
        )


@dataclass
class Alignment:
    """One batch's fitted alignment (identity when ``fitted`` is False).

    ``shift`` and ``scale`` are per feature of ``features`` in training-SD units of the
    transformed feature: aligned = (standardised - shift) / scale, back in raw units.
    """

    method: str
    n_cells: int
    fitted: bool
    reason: str = ""
    features: list = field(default_factory=list)
    shift: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scale: np.ndarray = field(default_factory=lambda: np.zeros(0))
    composition: dict = field(default_factory=dict)
    n_iter: int = 0
    converged: bool = True

    def apply(self, X, features, model: ClassGaussians) -> np.ndarray:
        """``X`` (cells x ``features``, raw units, NaN kept) with this batch's alignment."""
        X = np.array(X, dtype=float, copy=True)
        if not self.fitted:
            return X
        cols = [list(features).index(f) for f in self.features]
        sub = model.subset([model.features.index(f) for f in self.features])
        S = sub.standardise(X[:, cols])
        X[:, cols] = sub.raw((S - self.shift) / self.scale)
        return X

    def largest(self, n: int = 3) -> list[tuple[str, float]]:
        """The ``n`` largest absolute shifts, (feature, shift), largest first."""
        order = np.argsort(-np.abs(self.shift), kind="stable")[:n]
        return [(self.features[i], float(self.shift[i])) for i in order]

    def report(self) -> dict:
        """JSON-ready summary: method, cells, shift and scale per feature, composition."""
        return {
            "method": self.method,
            "n_cells": int(self.n_cells),
            "fitted": bool(self.fitted),
            "reason": self.reason,
            "shift_sd": {
                f: round(float(s), 4) for f, s in zip(self.features, self.shift, strict=True)
            },
            "scale": {
                f: round(float(s), 4) for f, s in zip(self.features, self.scale, strict=True)
            },
            "composition": {k: round(float(v), 4) for k, v in self.composition.items()},
            "n_iter": int(self.n_iter),
            "converged": bool(self.converged),
        }


def _log_gauss(R: np.ndarray, means: np.ndarray, prec: np.ndarray) -> np.ndarray:
    """Cells x classes log-density (up to a constant) of ``R`` under each class Gaussian
    (``prec``: K x p x p precisions)."""
    out = np.empty((len(R), len(means)))
    for k in range(len(means)):  # per class a matrix product: ~10x faster than one einsum
        L = np.linalg.cholesky(prec[k])
        z = (R - means[k]) @ L
        out[:, k] = -0.5 * (z * z).sum(axis=1) + np.log(np.diag(L)).sum()
    return out


def _responsibilities(R, model, prec, priors, allowed) -> tuple[np.ndarray, float]:
    """E-step: responsibilities (cells x classes) and the mean log-likelihood."""
    with np.errstate(divide="ignore"):
        logp = _log_gauss(R, model.means, prec) + np.log(priors)[None, :]
    if allowed is not None:
        logp = np.where(allowed, logp, -np.inf)
    top = logp.max(axis=1, keepdims=True)
    e = np.exp(logp - top)
    tot = e.sum(axis=1, keepdims=True)
    return e / tot, float((np.log(tot) + top).mean())


def em_align(
    S: np.ndarray,
    model: ClassGaussians,
    allowed=None,
    fit_scale: bool = False,
    ridge: float = RIDGE,
    max_iter: int = MAX_ITER,
    start=None,
) -> tuple:
    """EM of a per-feature shift (and scale) and class priors for the batch ``S``.

    Parameters
    ----------
    S : ndarray (n, p)
        The batch, standardised transformed features (complete rows).
    model : ClassGaussians
        The training classes over the same features.
    allowed : ndarray (n, K) of bool, optional
        Classes each cell may belong to (a known class); None = all.

    start : ndarray (p,), optional
        The shift EM starts from (default 0).

    Returns
    -------
    (shift, scale, priors, responsibilities, n_iter, converged, objective)
        ``objective``: the mean log-likelihood of the batch minus the shift's ridge penalty
        per cell (what EM increases; starts are compared by it).
    """
    n, p = S.shape
    prec = np.linalg.inv(model.cov)
    shift = np.zeros(p) if start is None else np.asarray(start, dtype=float).copy()
    scale = np.ones(p)
    priors = model.priors.copy()
    if allowed is not None:
        priors = np.where(allowed.any(axis=0), priors, 0.0) + 1e-12
        priors /= priors.sum()
    converged, it = False, 0
    for it in range(1, max_iter + 1):  # noqa: B007 (the count is returned)
        U = (S - shift) / scale
        resp, _ = _responsibilities(U, model, prec, priors, allowed)
        counts = resp.sum(axis=0) + PRIOR_COUNT * (
            allowed.any(axis=0) if allowed is not None else 1.0
        )
        priors = np.maximum(counts / counts.sum(), 1e-12)
        expected = resp @ model.means  # each cell's expected class mean
        # shift: penalised least squares with the pooled precision, in scaled units
        w = resp.sum(axis=0)
        A = np.einsum("k,kpq->pq", w, prec) + ridge * np.eye(p)
        b = np.einsum("kpq,kq->p", prec, resp.T @ (S / scale) - w[:, None] * model.means)
        new = np.linalg.solve(A, b) * scale
        if fit_scale:
            resid = (S - new) - expected * scale
            var = resp @ np.diagonal(model.cov, axis1=1, axis2=2)  # each cell's class variance
            ratio = np.sqrt((resid**2).mean(axis=0) / var.mean(axis=0))
            scale = np.clip(ratio, *SCALE_BOUNDS)
        moved = float(np.abs(new - shift).max())
        shift = new
        if moved < TOL:
            converged = True
            break
    U = (S - shift) / scale
    resp, loglik = _responsibilities(U, model, prec, priors, allowed)
    objective = loglik - np.log(scale).sum() - 0.5 * ridge * float(((shift / scale) ** 2).sum()) / n
    return shift, scale, priors, resp, it, converged, objective


def allowed_families(value: str, classes, where: str = "known_class") -> np.ndarray:
    """Which of the families ``classes`` a known class ``value`` allows (bool per class).

    ``value``: ``""`` (anything), ``Exc``/``Inh`` (also excitatory, spiny, GABAergic,
    aspiny, interneuron), a family name, or a Cre line or type name that
    :func:`ephys2expr.taxonomy.type_group` maps (``Pvalb-IRES-Cre`` -> Pvalb, ``Vip...`` ->
    Vip or Sncg, ``Htr3a``/``Ndnf`` -> the CGE families). Anything else is an
    :class:`~ephys2expr.errors.InputError` naming ``where`` and the value.
    """
    classes = [str(c) for c in classes]
    v = str(value).strip()
    exc = np.array([c in EXC_FAMILIES for c in classes])
    if not v:
        return np.ones(len(classes), bool)
    low = v.lower()
    if low in _EXC_WORDS:
        return exc
    if low in _INH_WORDS:
        return ~exc
    for c in classes:
        if c.lower() == low:
            return np.array([k == c for k in classes])
    group = type_group(v)
    if group in CRE_FAMILIES:
        return np.isin(classes, CRE_FAMILIES[group])
    if group.startswith("Exc"):
        return exc
    raise InputError(
        f"{where}: known class {v!r} is not Exc, Inh, one of the families "
        f"{classes} or a Cre line of a known group"
    )


def auto_method(known: bool) -> str:
    """What ``auto`` does: :data:`AUTO` when a known class restricts the batch, else none."""
    return AUTO if known else "none"


def fit_alignment(
    X, features, model: ClassGaussians, method: str = AUTO, allowed=None, min_cells: int = MIN_CELLS
) -> Alignment:
    """Fit one batch's alignment onto ``model``.

    Parameters
    ----------
    X : ndarray (n, len(features))
        The batch's features in their units (NaN = missing).
    features : list of str
        Column names of ``X``; those of ``model`` observed in at least half of the cells
        are aligned, on the cells that have all of them.
    method : str
        One of :data:`METHODS` (``auto`` = :data:`AUTO`).
    allowed : ndarray (n, K) of bool, optional
        Classes (``model.classes``) each cell may belong to.
    min_cells : int
        Below this many complete cells nothing is aligned.
    """
    if method == "auto":
        method = auto_method(allowed is not None and not np.asarray(allowed).all())
    X = np.asarray(X, dtype=float)
    n = len(X)
    if method == "none":
        return Alignment("none", n, False, "no known class" if allowed is None else "align: none")
    features = list(features)
    use = [
        f
        for f in model.features
        if f in features and np.isfinite(X[:, features.index(f)]).mean() >= 0.5
    ]
    cols = [features.index(f) for f in use]
    rows = np.isfinite(X[:, cols]).all(axis=1) if use else np.zeros(n, bool)
    if rows.sum() < min_cells or not use:
        return Alignment(method, n, False, f"{int(rows.sum())} complete cells < {min_cells}")
    sub = model.subset([model.features.index(f) for f in use])
    rows = np.flatnonzero(rows)
    if len(rows) > MAX_FIT_CELLS:  # the shift is a mean: 2,000 cells pin it to ~0.02 SD
        rows = np.sort(np.random.default_rng(0).choice(rows, MAX_FIT_CELLS, replace=False))
    S = sub.standardise(X[np.ix_(rows, cols)])
    if method == "zscore":
        sd = S.std(axis=0)
        shift, scale = S.mean(axis=0), np.where(sd > 0, sd, 1.0)
        return Alignment(method, n, True, "", use, shift, scale, {}, 1, True)
    ok = None if allowed is None else np.asarray(allowed, bool)[rows]
    best = None
    first = starts(S, sub, ok)
    for start in first[1:2] if method == "em_mixed" else first:
        fit = em_align(S, sub, ok, method == "em_scale", start=start)
        if best is None or fit[-1] > best[-1] + 1e-9:
            best = fit
    shift, scale, priors, _, it, conv, _ = best
    comp = dict(zip(model.classes, priors.tolist(), strict=True))
    return Alignment(method, n, True, "", use, shift, scale, comp, it, conv)


def starts(S: np.ndarray, model: ClassGaussians, allowed=None) -> list[np.ndarray]:
    """Shifts EM starts from: none; the batch mean minus the training mean (the z-score's
    shift, right for a batch of the training mix); and the batch mean minus each allowed
    class's mean (right for a batch of that class only). The start with the best
    penalised likelihood wins, so a one-class batch is not forced into the training mix."""
    mean = S.mean(axis=0)
    out = [np.zeros(S.shape[1]), mean - model.priors @ model.means]
    ok = np.ones(len(model.classes), bool) if allowed is None else allowed.any(axis=0)
    out += [mean - model.means[k] for k in np.flatnonzero(ok)]
    return out


__all__ = [
    "AUTO",
    "CRE_FAMILIES",
    "EXC_FAMILIES",
    "MIN_CELLS",
    "Alignment",
    "ClassGaussians",
    "LOG_FEATURES",
    "METHODS",
    "allowed_families",
    "auto_method",
    "em_align",
    "fit_alignment",
    "inverse_transform",
    "transform",
]
