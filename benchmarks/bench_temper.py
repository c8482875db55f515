"""Fit the tempering slope of identity/temper.py on the training lab only (docs/transfer.md).

Scala's cells in 5 folds grouped by animal; each held-out fold is moved like a foreign lab
(a shift of N(0, sigma) training SD per feature, a log-normal scale of SD 0.2 sigma, and a
per-family shift of N(0, rho sigma): the lab moves its types unequally), aligned by
``auto`` with and without Exc/Inh known, and classified by a family logistic regression
fitted on the other folds. Per aligned batch the NLL-optimal temperature of its family
probabilities; the slope is the least-squares fit of ``T - 1 = slope * s`` (``s``: the RMS
of the fitted shift). Never uses another lab's labels.

``--second-protocol`` (issue #30's third pass, docs/transfer.md "Tempering"): half of each
shifted lab's cells run as a second protocol (tau and cap not measured, a further shift of
N(0, 0.3 sigma): they are a sub-batch of their own, classified without tau and cap), and
besides the batch-only slope it fits a per-cell rule ``T = max(1, 1 + s (slope + distance
log r))``, ``r`` the aligned cell's smallest Mahalanobis distance squared per feature to an
allowed family (:func:`cell_distance`), by the log-loss of all aligned cells
(:func:`fit_rule`), and compares the two rules' log-loss on held-out folds
(:func:`held_out_nll`). The per-cell rule wins there and lost on the Allen cells' family
ECE with the class known, so identity/temper.py keeps the batch-only rule.

    python -m benchmarks.bench_temper --prepared-dir data/prepared/scala2021 [--second-protocol]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from scipy.optimize import minimize, minimize_scalar
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

from ephys2expr.identity.align import (
    EXC_FAMILIES,
    ClassGaussians,
    allowed_families,
    fit_alignment,
)
from ephys2expr.identity.alignment import pattern_rows
from ephys2expr.identity.temper import shift_size, temper

SIGMAS = (0.0, 0.5, 1.0, 1.5)
RHOS = (0.0, 0.25, 0.5)
SECOND = ("tau", "cap")  # the second protocol (--second-protocol) does not measure these
SECOND_SHARE = 0.5  # ... on this share of each simulated lab's cells


def best_temperature(p: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the mean negative log-likelihood of the classes ``y``."""

    def nll(log_t: float) -> float:
        q = temper(p, np.exp(log_t))[np.arange(len(y)), y]
        return float(-np.log(np.clip(q, 1e-12, None)).mean())

    return float(np.exp(minimize_scalar(nll, bounds=(-1, 2), method="bounded").x))


def _known(fam: np.ndarray, classes) -> np.ndarray:
    """Cells x families allowed when each cell's Exc/Inh class is known."""
    ei = np.where(np.isin(fam, EXC_FAMILIES), "Exc", "Inh")
    return np.vstack([allowed_families(v, classes) for v in ei])


def _shifts(rng, sigmas, rhos, draws):
    """(sigma, rho) of every simulated lab: the unshifted fold once, the others ``draws``."""
    for sigma in sigmas:
        for rho in rhos if sigma else (0.0,):
            for _ in range(draws if sigma else 1):
                yield sigma, rho


def _fold_classifiers(X, fam, tr, feats):
    """Family logistic regressions of the training part: all features, and without
    :data:`SECOND` (for the second protocol's cells); each (model, columns, mean, SD)."""
    out = []
    for cols in (list(range(len(feats))), [j for j, f in enumerate(feats) if f not in SECOND]):
        m, sd = X[tr][:, cols].mean(axis=0), X[tr][:, cols].std(axis=0)
        clf = LogisticRegression(C=1.0, max_iter=3000).fit((X[tr][:, cols] - m) / sd, fam[tr])
        out.append((clf, cols, m, sd))
    return out


def _lab(rng, G, S0, ci, sigma, rho, feats, second_share=0.0):
    """Held-out cells moved like a foreign lab (raw units, NaN where the second protocol
    measured nothing) and the second protocol's cells (bool; none when ``second_share`` is
    0 or the lab is not shifted)."""
    d, sc = rng.normal(0, sigma, len(feats)), rng.lognormal(0, 0.2 * sigma, len(feats))
    e = rng.normal(0, rho * sigma, (len(G.classes), len(feats)))
    S = S0 * sc + d + e[ci]
    second = np.zeros(len(S0), bool)
    if second_share and sigma:
        second = rng.random(len(S0)) < second_share
        S[second] += rng.normal(0, 0.3 * sigma, len(feats))
    Xs = G.raw(S)
    Xs[np.ix_(second, [feats.index(f) for f in SECOND])] = np.nan
    return Xs, second


def _proba(clfs, Xa, second, known):
    """Family probabilities of the aligned cells (each protocol by its classifier), zero
    outside ``known`` (cells x classes bool, None = all) and renormalised."""
    p = np.zeros((len(Xa), len(clfs[0][0].classes_)))
    for (clf, cols, m, sd), rows in zip(clfs, (~second, second), strict=True):
        if rows.any():
            p[rows] = clf.predict_proba((Xa[rows][:, cols] - m) / sd)
    if known is not None:
        p = np.where(known, p, 0.0)
        p /= p.sum(axis=1, keepdims=True)
    return p


def shift_sizes(al, X, features) -> np.ndarray:
    """Per cell the RMS shift of its own alignment (the batch's or its part's)."""
    out = np.full(len(X), shift_size(al.shift, al.fitted))
    for part in al.parts:
        out[pattern_rows(X, features, al.features, part.features)] = shift_size(
            part.shift, part.fitted
        )
    return out


def cell_distance(model: ClassGaussians, Xa, features, allowed=None) -> np.ndarray:
    """Per aligned cell (raw units, NaN = not measured) the smallest Mahalanobis distance
    squared per feature to an allowed family's mean (pooled within-family covariance, over
    the features the cell measured): the per-cell term of the rejected rule (docs/transfer.md)."""
    Xa = np.asarray(Xa, dtype=float)
    cols = [list(features).index(f) for f in model.features]
    seen = np.isfinite(Xa[:, cols])
    out = np.full(len(Xa), np.nan)
    for pat in np.unique(seen[seen.any(axis=1)], axis=0):
        rows = (seen == pat).all(axis=1)
        sub = model.subset(np.flatnonzero(pat)).pooled()
        S = sub.standardise(Xa[np.ix_(rows, [c for c, k in zip(cols, pat, strict=True) if k])])
        d = S[:, None, :] - sub.means[None]
        d2 = np.einsum("nkp,pq,nkq->nk", d, np.linalg.inv(sub.pooled_cov), d)
        if allowed is not None:
            d2 = np.where(np.asarray(allowed, bool)[rows], d2, np.inf)
        out[rows] = d2.min(axis=1) / int(pat.sum())
    return out


def simulate(
    f: pd.DataFrame,
    types: pd.DataFrame,
    draws: int = 2,
    n_folds: int = 5,
    sigmas=SIGMAS,
    rhos=RHOS,
    seed: int = 0,
    cells: list | None = None,
    second_share: float = 0.0,
) -> pd.DataFrame:
    """One row per (fold, simulated lab, known or not): the fitted shift's size ``s``,
    whether the batch was aligned, the accuracy and the NLL-optimal temperature; appends to
    ``cells`` (when given) per aligned batch its cells' probabilities ``p``, classes ``y``,
    alignment's RMS shift ``s`` and :func:`cell_distance` ``r``."""
    fam, groups = types["family"].astype(str).to_numpy(), types["group"].astype(str).to_numpy()
    feats, X = list(f.columns), f.to_numpy(dtype=float)
    rng, rows = np.random.default_rng(seed), []
    for k, (tr, te) in enumerate(GroupKFold(n_folds).split(X, fam, groups)):
        G = ClassGaussians.fit(X[tr], fam[tr], feats)
        clfs = _fold_classifiers(X, fam, tr, feats)
        assert list(clfs[0][0].classes_) == list(G.classes)
        y = np.array([list(G.classes).index(c) for c in fam[te]])
        S0 = G.standardise(X[te])
        for sigma, rho in _shifts(rng, sigmas, rhos, draws):
            Xs, second = _lab(rng, G, S0, y, sigma, rho, feats, second_share)
            for is_known in (False, True):
                allowed = _known(fam[te], G.classes) if is_known else None
                al = fit_alignment(Xs, feats, G, "auto", allowed)
                Xa = al.apply(Xs, feats, G)
                p = _proba(clfs, Xa, second, allowed)
                if cells is not None and al.fitted:
                    r = cell_distance(G, Xa, feats, allowed)
                    cells.append(
                        {
                            "p": p,
                            "y": y,
                            "s": shift_sizes(al, Xs, feats),
                            "r": r,
                            "fold": k,
                            "known": is_known,
                        }
                    )
                rows.append(
                    {
                        "fold": k,
                        "sigma": sigma,
                        "rho": rho,
                        "known": is_known,
                        "aligned": al.fitted,
                        "s": shift_size(al.shift, al.fitted),
                        "accuracy": float((p.argmax(axis=1) == y).mean()),
                        "t_best": best_temperature(p, y),
                    }
                )
    return pd.DataFrame(rows)


def fit_slope(table: pd.DataFrame) -> float:
    """Least squares of ``t_best - 1 = slope * s`` over the aligned batches (a batch left
    unaligned has s = 0 and no temperature to learn from)."""
    t = table[table["aligned"]]
    s, y = t["s"].to_numpy(), t["t_best"].to_numpy() - 1.0
    return float((s * y).sum() / (s * s).sum())


def _rule_nll(theta, p, y, s, logr) -> float:
    T = np.maximum(1.0, 1.0 + s * (theta[0] + theta[1] * logr))
    return float(-np.log(np.clip(temper(p, T)[np.arange(len(y)), y], 1e-12, None)).mean())


def fit_rule(cells: list, distance: bool = True, exclude_fold: int | None = None) -> np.ndarray:
    """(slope, distance) of ``T = max(1, 1 + s (slope + distance log r))`` minimising the
    log-loss of the cells of :func:`simulate`'s aligned batches (``distance=False``: the
    batch-only rule, distance 0; ``exclude_fold``: leave that fold's batches out)."""
    use = [c for c in cells if c["fold"] != exclude_fold]
    p, y, s = (np.concatenate([c[k] for c in use]) for k in ("p", "y", "s"))
    r = np.concatenate([c["r"] for c in use])
    logr = np.log(np.maximum(np.nan_to_num(r, nan=1.0), 1e-12))
    free = [0, 1] if distance else [0]

    def obj(v):
        theta = np.zeros(2)
        theta[free] = v
        return _rule_nll(theta, p, y, s, logr)

    theta = np.zeros(2)
    theta[free] = minimize(obj, np.full(len(free), 0.3), method="Nelder-Mead").x
    return theta


def held_out_nll(cells: list, distance: bool) -> float:
    """Mean log-loss of each fold's aligned cells under the rule fitted on the other folds."""
    out = []
    for k in sorted({c["fold"] for c in cells}):
        theta = fit_rule(cells, distance, exclude_fold=k)
        held = [c for c in cells if c["fold"] == k]
        p, y, s = (np.concatenate([c[key] for c in held]) for key in ("p", "y", "s"))
        r = np.concatenate([c["r"] for c in held])
        out.append(_rule_nll(theta, p, y, s, np.log(np.maximum(np.nan_to_num(r, nan=1.0), 1e-12))))
    return float(np.mean(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared-dir", default="data/prepared/scala2021")
    parser.add_argument("--draws", type=int, default=2)
    parser.add_argument("--second-protocol", action="store_true")
    args = parser.parse_args()
    f = pd.read_parquet(f"{args.prepared_dir}/train_features.parquet").astype(float)
    types = pd.read_parquet(f"{args.prepared_dir}/train_types.parquet").loc[f.index]
    cells: list = []
    share = SECOND_SHARE if args.second_protocol else 0.0
    table = simulate(f, types, args.draws, cells=cells, second_share=share)
    pd.set_option("display.width", 200)
    print(table.groupby(["known", "sigma", "rho"])[["accuracy", "s", "t_best"]].mean().round(3))
    print(f"slope {fit_slope(table):.3f} (identity/temper.py TEMPER_SLOPE)")
    if args.second_protocol:
        slope, dist = fit_rule(cells)
        print(
            f"batch-only rule by log-loss: slope {fit_rule(cells, False)[0]:.3f}; per-cell rule: "
            f"slope {slope:.3f}, distance {dist:.3f}; log-loss on held-out folds: batch-only "
            f"{held_out_nll(cells, False):.4f}, per-cell {held_out_nll(cells, True):.4f}"
        )


if __name__ == "__main__":
    main()
