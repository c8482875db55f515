"""Fit the tempering slope of identity/temper.py on the training lab only (docs/transfer.md).

Scala's cells in 5 folds grouped by animal; each held-out fold is moved like a foreign lab
(a shift of N(0, sigma) training SD per feature, a log-normal scale of SD 0.2 sigma, and a
per-family shift of N(0, rho sigma): the lab moves its types unequally), aligned by
``auto`` with and without Exc/Inh known, and classified by a family logistic regression
fitted on the other folds. Per aligned batch the NLL-optimal temperature of its family
probabilities; the slope is the least-squares fit of ``T - 1 = slope * s`` (``s``: the RMS
of the fitted shift). Never uses another lab's labels.

    python -m benchmarks.bench_temper --prepared-dir data/prepared/scala2021
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

from ephys2expr.identity.align import (
    EXC_FAMILIES,
    ClassGaussians,
    allowed_families,
    fit_alignment,
)
from ephys2expr.identity.temper import shift_size, temper

SIGMAS = (0.0, 0.5, 1.0, 1.5)
RHOS = (0.0, 0.25, 0.5)


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


def simulate(
    f: pd.DataFrame,
    types: pd.DataFrame,
    draws: int = 2,
    n_folds: int = 5,
    sigmas=SIGMAS,
    rhos=RHOS,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (fold, simulated lab, known or not): the fitted shift's size ``s``,
    whether the batch was aligned, the accuracy and the NLL-optimal temperature."""
    fam, groups = types["family"].astype(str).to_numpy(), types["group"].astype(str).to_numpy()
    feats, X = list(f.columns), f.to_numpy(dtype=float)
    rng, rows = np.random.default_rng(seed), []
    for k, (tr, te) in enumerate(GroupKFold(n_folds).split(X, fam, groups)):
        G = ClassGaussians.fit(X[tr], fam[tr], feats)
        m, sd = X[tr].mean(axis=0), X[tr].std(axis=0)
        clf = LogisticRegression(C=1.0, max_iter=3000).fit((X[tr] - m) / sd, fam[tr])
        cls = list(clf.classes_)
        y = np.array([cls.index(c) for c in fam[te]])
        ci = np.array([list(G.classes).index(c) for c in fam[te]])
        known = _known(fam[te], G.classes)[:, [list(G.classes).index(c) for c in cls]]
        S0 = G.standardise(X[te])
        for sigma, rho in _shifts(rng, sigmas, rhos, draws):
            d, sc = rng.normal(0, sigma, len(feats)), rng.lognormal(0, 0.2 * sigma, len(feats))
            e = rng.normal(0, rho * sigma, (len(G.classes), len(feats)))
            Xs = G.raw(S0 * sc + d + e[ci])
            for is_known in (False, True):
                allowed = _known(fam[te], G.classes) if is_known else None
                al = fit_alignment(Xs, feats, G, "auto", allowed)
                p = clf.predict_proba((al.apply(Xs, feats, G) - m) / sd)
                if is_known:
                    p = np.where(known, p, 0.0)
                    p /= p.sum(axis=1, keepdims=True)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared-dir", default="data/prepared/scala2021")
    parser.add_argument("--draws", type=int, default=2)
    args = parser.parse_args()
    f = pd.read_parquet(f"{args.prepared_dir}/train_features.parquet").astype(float)
    types = pd.read_parquet(f"{args.prepared_dir}/train_types.parquet").loc[f.index]
    table = simulate(f, types, args.draws)
    pd.set_option("display.width", 200)
    print(table.groupby(["known", "sigma", "rho"])[["accuracy", "s", "t_best"]].mean().round(3))
    print(f"slope {fit_slope(table):.3f} (identity/temper.py TEMPER_SLOPE)")


if __name__ == "__main__":
    main()
