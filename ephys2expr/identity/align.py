"""Batch alignment: move a batch of cells from another lab onto the training cells.

A lab records the same cell types with systematically different numbers (docs/transfer.md:
AP half-width 0.80 vs 1.56 ms, rmp -75 vs -66 mV between Allen and Scala), so a per-cell
classifier trained in one lab is confidently wrong in another. A per-batch z-score removes
such offsets but assumes the batch holds the training cells' mix of classes: a batch of
interneurons only is pulled towards the training mean and half of it is called excitatory.

The methods here are composition-aware. The training cells define class-conditional
Gaussians (per family a mean; one pooled within-class covariance, or per family one shrunk
towards it; features ``log1p``-transformed where skewed, :data:`LOG_FEATURES`, and
standardised by the training mean and SD). The batch is modelled as ``z = u * scale + d``
with ``u`` drawn from that mixture with *unknown* class priors; EM estimates ``d`` (and the
priors, the batch's composition) with each cell's classes restricted to those a user says
are possible.

* ``em_shift`` / ``em_scale`` / ``em_mixed``: per-family covariances, a weak ridge on the
  shift, several starts (the first helper's methods, kept for comparison);
* ``em_pooled``: the pooled covariance, no ridge, no pseudo-count, started from the z-score
  of the allowed classes (:func:`pooled_fit`);
* ``em_zscore``: the batch z-scored (its own SD is the scale), then EM of a shift on the
  pooled Gaussians (:func:`zscore_fit`, the method of the issue's reviewer); shifts and
  scales a batch of its size cannot tell from none are dropped (:func:`significant`), so a
  batch like the training cells stays unchanged;
* ``auto`` (:data:`AUTO`): with a known class ``em_pooled`` within it; without one, a
  composition test (:func:`composition_test`: is the batch bimodal on the Exc/Inh axis?)
  and ``em_zscore`` when the batch is mixed, no alignment when it is one class;
* after ``em_zscore``, ``em_pooled`` or ``auto`` aligned a batch, each group of cells that
  measured fewer features (another protocol, mostly) gets its own shift from the batch's
  (:func:`fit_parts`; the fitted :class:`~ephys2expr.identity.alignment.Alignment` keeps
  them as ``parts``).

Why (benchmarks/bench_transfer.py, docs/transfer.md): with a free per-feature shift the
likelihood cannot tell "a batch of interneurons" from "excitatory cells moved by a few SD"
(EM from any start explains the mixed Allen batches as nearly all interneurons, and one-class
interneuron batches as excitatory), while the z-score start is right for mixed batches and
wrong for one-class ones. Bimodality on the Exc/Inh axis survives any shift, so it decides.

Shifts are reported in training-SD units of the transformed feature (log1p for
:data:`LOG_FEATURES`): a shift of +1 on ``aphw`` means the batch's half-widths are one
training SD (of log1p ms) above those of training cells of the same class.
"""

from __future__ import annotations

import numpy as np

from ephys2expr.errors import InputError
from ephys2expr.identity.alignment import Alignment
from ephys2expr.identity.gaussians import (
    LOG_FEATURES,
    ClassGaussians,
    em_align,
    inverse_transform,
    transform,
)
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

METHODS = ("none", "auto", "zscore", "em_shift", "em_scale", "em_mixed", "em_pooled", "em_zscore")
AUTO = "auto"
MIN_CELLS = 20  # a smaller batch is not aligned: its mean alone is off by ~0.2 SD
MAX_FIT_CELLS = 2000  # larger batches are fitted on a seeded subsample of this many cells
POOLED_RIDGE = 0.0  # em_pooled / auto: no pull towards 0 (the z-score start does the work)
BIC_MIXED = 10.0  # auto: two components beat one on the Exc/Inh axis by this BIC: mixed
MIN_SHARE = 0.1  # ... and the smaller one holds at least this share of the cells
SIGNIFICANCE = 3.0  # em_zscore / auto: shifts and scales within this many SE are dropped


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


def _group_start(S: np.ndarray, model: ClassGaussians, ok: np.ndarray) -> np.ndarray:
    """The batch mean minus the training prior-weighted mean of the classes ``ok`` (the
    z-score's shift when all classes are allowed)."""
    w = np.where(ok, model.priors, 0.0)
    return S.mean(axis=0) - (w / w.sum()) @ model.means


def pooled_fit(S: np.ndarray, model: ClassGaussians, allowed=None) -> tuple:
    """EM of the shift and priors on the pooled-covariance Gaussians, started from the
    z-score of the allowed classes, no ridge and no pseudo-count (:func:`em_align`'s tuple)."""
    ok = np.ones(len(model.classes), bool) if allowed is None else allowed.any(axis=0)
    return em_align(
        S, model, allowed, ridge=POOLED_RIDGE, start=_group_start(S, model, ok), prior_count=0.0
    )


def zscore_fit(S: np.ndarray, model: ClassGaussians, allowed=None) -> tuple:
    """The batch z-scored (its own mean and SD), then EM of a shift and the priors on the
    pooled-covariance Gaussians from no shift, no ridge, no pseudo-count (the reviewer's
    method of issue #30). Returns :func:`em_align`'s tuple with the shift and scale of the
    whole map: aligned = (S - shift) / scale."""
    mean, sd = S.mean(axis=0), S.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    fit = em_align((S - mean) / sd, model, allowed, ridge=0.0, prior_count=0.0)
    shift, scale = significant(mean + fit[0] * sd, sd, len(S))
    return (shift, scale, *fit[2:])


def significant(shift: np.ndarray, scale: np.ndarray, n: int) -> tuple:
    """Keep only the shifts and scales a batch of ``n`` cells can tell from none: a shift
    within :data:`SIGNIFICANCE` standard errors of a mean (1/sqrt(n) training SD) is set to
    0, a scale whose log is within as many of its standard errors (1/sqrt(2n)) to 1. A batch
    like the training cells then stays unchanged (its animals' own small offsets are not
    "corrected"), a batch from another lab is moved by several SD."""
    shift = np.where(np.abs(shift) > SIGNIFICANCE / np.sqrt(n), shift, 0.0)
    scale = np.where(np.abs(np.log(scale)) > SIGNIFICANCE / np.sqrt(2 * n), scale, 1.0)
    return shift, scale


def exc_inh_axis(model: ClassGaussians) -> np.ndarray:
    """The Exc/Inh discriminant (LDA) direction of the training classes: the pooled
    within-class precision times the Exc minus Inh (training-share weighted) mean."""
    exc = np.isin(model.classes, EXC_FAMILIES)
    if exc.all() or not exc.any():
        return np.zeros(len(model.features))
    pr = model.priors
    diff = (
        pr[exc] @ model.means[exc] / pr[exc].sum() - pr[~exc] @ model.means[~exc] / pr[~exc].sum()
    )
    return np.linalg.solve(model.pooled_cov, diff)


def composition_test(S: np.ndarray, model: ClassGaussians) -> dict:
    """Does the batch hold both Exc and Inh cells? One-class batches are unimodal on the
    Exc/Inh axis (:func:`exc_inh_axis`) whatever their lab's offset, mixed ones bimodal.

    Fits one and two Gaussians (shared variance) to the batch's projections on the axis and
    calls the batch mixed when two win by BIC by more than :data:`BIC_MIXED` (the usual
    "very strong evidence") and the smaller component holds at least :data:`MIN_SHARE` of
    the cells (a few outliers do not make a mix).

    Returns
    -------
    dict
        ``mixed`` (bool), ``delta_bic`` (one minus two components), ``minor_share``.
    """
    from sklearn.mixture import GaussianMixture

    t = (S @ exc_inh_axis(model))[:, None]
    fits = [
        GaussianMixture(k, covariance_type="tied", n_init=3, random_state=0).fit(t) for k in (1, 2)
    ]
    delta = float(fits[0].bic(t) - fits[1].bic(t))
    minor = float(fits[1].weights_.min())
    return {
        "mixed": bool(delta > BIC_MIXED and minor >= MIN_SHARE),
        "delta_bic": round(delta, 2),
        "minor_share": round(minor, 3),
    }


def fit_alignment(
    X, features, model: ClassGaussians, method: str = AUTO, allowed=None, min_cells: int = MIN_CELLS
) -> Alignment:
    """Fit one batch's alignment onto ``model``.

    Parameters
    ----------
    X : ndarray (n, len(features))
        The batch's features in their units (NaN = missing).
    features : list of str
        Column names of ``X``; which of ``model``'s are aligned: :func:`aligned_features`.
    method : str
        One of :data:`METHODS` (``auto``: :func:`composition_test` then ``em_zscore`` or
        nothing; ``em_pooled`` within a known class).
    allowed : ndarray (n, K) of bool, optional
        Classes (``model.classes``) each cell may belong to.
    min_cells : int
        Below this many complete cells nothing is aligned.
    """
    X = np.asarray(X, dtype=float)
    n = len(X)
    if method == "none":
        return Alignment("none", n, False, "align: none")
    features = list(features)
    use, rows = aligned_features(X, features, model, min_cells)
    cols = [features.index(f) for f in use]
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
    if method in ("auto", "em_pooled", "em_zscore"):
        al = _pooled_alignment(S, sub.pooled(), ok, method, n, use, model.classes)
        al.parts = fit_parts(X, features, model, al, allowed, min_cells)
        return al
    best = None
    first = starts(S, sub, ok)
    for start in first[1:2] if method == "em_mixed" else first:
        fit = em_align(S, sub, ok, method == "em_scale", start=start)
        if best is None or fit[-1] > best[-1] + 1e-9:
            best = fit
    shift, scale, priors, _, it, conv, _ = best
    comp = dict(zip(model.classes, priors.tolist(), strict=True))
    return Alignment(method, n, True, "", use, shift, scale, comp, it, conv)


def aligned_features(
    X: np.ndarray, features: list, model: ClassGaussians, min_cells: int
) -> tuple[list, np.ndarray]:
    """The features a batch is aligned on and the cells the fit uses (complete in them).

    Every feature of ``model`` measured in the batch, when at least ``min_cells`` cells have
    all of them (a lab that measured tau on half its cells: the shift is fitted on that half
    and moves every cell); else those measured in at least half of the cells."""
    seen = [
        f for f in model.features if f in features and np.isfinite(X[:, features.index(f)]).any()
    ]
    for use in (seen, [f for f in seen if np.isfinite(X[:, features.index(f)]).mean() >= 0.5]):
        rows = (
            np.isfinite(X[:, [features.index(f) for f in use]]).all(axis=1)
            if use
            else np.zeros(len(X), bool)
        )
        if rows.sum() >= min_cells:
            break
    return use, rows


def _pooled_alignment(S, model, ok, method, n, use, classes) -> Alignment:
    """The pooled-covariance methods: ``em_pooled`` (:func:`pooled_fit`), ``em_zscore``
    (:func:`zscore_fit`) and ``auto``: with a known class :func:`pooled_fit` within it;
    without, :func:`zscore_fit` when :func:`composition_test` finds a mixed batch and no
    alignment otherwise (a one-class batch stays as the classifier calls it)."""
    test = {}
    if method == "auto" and ok is None:
        test = composition_test(S, model)
        if not test["mixed"]:
            return Alignment(
                method, n, False, "one-class batch (composition test)", composition_test=test
            )
    fit = (
        zscore_fit if method == "em_zscore" or (method == "auto" and ok is None) else pooled_fit
    )(S, model, ok)
    shift, scale, priors, resp, it, conv, _ = fit
    comp = dict(zip(classes, priors.tolist(), strict=True))
    return Alignment(method, n, True, "", use, shift, scale, comp, it, conv, test, resp)


def fit_parts(
    X: np.ndarray, features: list, model: ClassGaussians, parent: Alignment, allowed, min_cells
) -> list[Alignment]:
    """Alignments of the sub-batches of cells that measured only some of the batch's
    aligned features (at least ``min_cells`` cells with one pattern, >= 2 features).

    A lab that measured fewer features on some cells mostly ran another protocol or
    pipeline on them (Allen v10: 55 % of the cells have no tau, and their rmp, AP amplitude
    and half-width sit 0.3-0.5 SD from the other cells' of the same class), so they get
    their own shift: EM on their features from the batch's alignment (its shift as the
    start, its scale kept), class priors re-estimated within the allowed classes; a change
    of the shift within :data:`SIGNIFICANCE` standard errors is dropped, as in
    :func:`zscore_fit`. Nothing for a batch that was not aligned."""
    if not parent.fitted:
        return []
    cols = [features.index(f) for f in parent.features]
    seen = np.isfinite(X[:, cols])
    parts = []
    for pat in np.unique(seen[~seen.all(axis=1)], axis=0):
        rows = np.flatnonzero((seen == pat).all(axis=1))
        if len(rows) < min_cells or pat.sum() < 2:
            continue
        if len(rows) > MAX_FIT_CELLS:
            rows = np.sort(np.random.default_rng(0).choice(rows, MAX_FIT_CELLS, replace=False))
        use = [f for f, k in zip(parent.features, pat, strict=True) if k]
        idx = np.flatnonzero(pat)
        sub = model.subset([model.features.index(f) for f in use]).pooled()
        S = sub.standardise(X[np.ix_(rows, [features.index(f) for f in use])])
        shift, scale = parent.shift[idx], parent.scale[idx]
        ok = None if allowed is None else np.asarray(allowed, bool)[rows]
        fit = em_align((S - shift) / scale, sub, ok, ridge=0.0, prior_count=0.0)
        delta, _ = significant(fit[0], np.ones(len(use)), len(rows))
        lacks = ", ".join(f for f, k in zip(parent.features, pat, strict=True) if not k)
        n = int((seen == pat).all(axis=1).sum())
        comp = dict(zip(model.classes, fit[2].tolist(), strict=True))
        parts.append(
            Alignment(
                parent.method,
                n,
                True,
                f"cells without {lacks}",
                use,
                shift + delta * scale,
                scale.copy(),
                comp,
                fit[4],
                fit[5],
            )
        )
    return parts


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
    "LOG_FEATURES",
    "METHODS",
    "MIN_CELLS",
    "Alignment",
    "ClassGaussians",
    "aligned_features",
    "allowed_families",
    "composition_test",
    "em_align",
    "exc_inh_axis",
    "fit_alignment",
    "fit_parts",
    "inverse_transform",
    "pooled_fit",
    "significant",
    "transform",
    "zscore_fit",
]
