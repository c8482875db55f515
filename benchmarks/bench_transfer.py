"""Benchmark the batch-alignment methods on every labelled foreign set, in one run (issue #30).

Not a test. First the time of predicting ``--cells`` (10,000) cells with ``align: none``
and ``auto`` and their ratio (issue #30: at most 2; ``--timing-only`` stops there). Then,
for a per-cell model store (the Scala store of ``train``) and the foreign sets of
:func:`ephys2expr.validate.transfer.sets.transfer_sets` prints, per set and method of
:data:`ephys2expr.validate.transfer.scores.METHODS`:

* Exc/Inh agreement with nothing known of the batch, read from the store's family classifier
  on the aligned features (as predict does) and, for the EM methods, from the EM's own
  responsibilities;
* with the known class: family agreement of the interneuron-line cells and its ECE;
* ``auto``'s chosen hypothesis (mixed / Exc / Inh) and the BIC of each;

then the held-out Scala check: per grouped fold (by animal) a family logistic regression and
the Gaussians fitted on the other folds, and the held-out family accuracy without alignment
and with ``auto`` (target: changes by <= 0.005). Run:
``python -m benchmarks.bench_transfer --store models/scala2021 [--raw-dir data/raw]``. Also prints
the 90 % interval coverage of Cadwell's measured expression
(:func:`ephys2expr.validate.transfer.scores.cadwell_coverage`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def _resp_agreement(store, model, s, method: str) -> float | None:
    """Exc/Inh agreement read from the EM responsibilities (complete cells only)."""
    from ephys2expr.identity.align import EXC_FAMILIES, fit_alignment

    X = s.cells.reindex(columns=store.features).astype(float).to_numpy()
    al = fit_alignment(X, store.features, model, method)
    if al.responsibilities is None:
        return None
    use = [store.features.index(f) for f in al.features]
    rows = np.flatnonzero(np.isfinite(X[:, use]).all(axis=1))
    exc = np.isin(model.classes, EXC_FAMILIES)
    pred = np.where(al.responsibilities[:, exc].sum(axis=1) > 0.5, "Exc", "Inh")
    truth = s.truth[rows[: len(pred)]]
    ok = truth != ""
    return float((pred == truth)[ok].mean())


def held_out_scala(prepared_dir: str, n_folds: int = 5) -> pd.DataFrame:
    """Per grouped fold the held-out family accuracy without alignment and with ``auto``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    from ephys2expr.identity.align import ClassGaussians, fit_alignment

    f = pd.read_parquet(f"{prepared_dir}/train_features.parquet").astype(float)
    types = pd.read_parquet(f"{prepared_dir}/train_types.parquet").loc[f.index]
    fam, groups = types["family"].astype(str).to_numpy(), types["group"].astype(str).to_numpy()
    feats, X = list(f.columns), f.to_numpy()
    rows = []
    for k, (tr, te) in enumerate(GroupKFold(n_folds).split(X, fam, groups)):
        G = ClassGaussians.fit(X[tr], fam[tr], feats)
        m, sd = X[tr].mean(axis=0), X[tr].std(axis=0)
        clf = LogisticRegression(C=1.0, max_iter=3000).fit((X[tr] - m) / sd, fam[tr])
        al = fit_alignment(X[te], feats, G, "auto")
        acc0 = float((clf.predict((X[te] - m) / sd) == fam[te]).mean())
        acc1 = float((clf.predict((al.apply(X[te], feats, G) - m) / sd) == fam[te]).mean())
        rows.append(
            {
                "fold": k,
                "n": len(te),
                "acc_none": acc0,
                "acc_auto": acc1,
                "change": acc1 - acc0,
                "mixed": al.composition_test.get("mixed"),
                "max_shift": float(np.abs(al.shift).max()),
            }
        )
    return pd.DataFrame(rows)


def predict_timing(store_dir: str, n_cells: int = 10_000, repeats: int = 2) -> dict:
    """Seconds to predict ``n_cells`` cells (resampled from the Allen v6 and v10 cells with
    their missing features, 5 % jitter, one batch) with ``align: none`` and ``auto``: the
    whole predict stage in a child process, best of ``repeats``, alternating."""
    import subprocess
    import sys
    import tempfile
    import time

    from ephys2expr import paths
    from ephys2expr.features import PLAUSIBLE_RANGE
    from ephys2expr.model.store import load_model_store

    feats = load_model_store(store_dir).features
    frames = [pd.read_parquet(p) for p in sorted(paths.PREPARED.glob("**/cells_aibs_v*.parquet"))]
    real = pd.concat(frames)[feats]
    rng = np.random.default_rng(0)
    X = real.iloc[rng.integers(0, len(real), n_cells)].to_numpy()
    X = X * rng.lognormal(0, 0.05, size=X.shape)
    for j, f in enumerate(feats):  # NaN stays NaN
        X[:, j] = np.clip(X[:, j], PLAUSIBLE_RANGE[f].low + 1e-6, PLAUSIBLE_RANGE[f].high)
    cells = pd.DataFrame(X, columns=feats, index=[f"cell{i}" for i in range(n_cells)])
    times = {"none": [], "auto": []}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "cells.csv"
        cells.rename_axis("cell_id").to_csv(src)
        for _ in range(repeats):
            for method in times:
                cmd = [sys.executable, "-m", "stages.predict", "--model-dir", store_dir]
                cmd += ["--input", str(src), "--output", f"{tmp}/{method}.h5ad"]
                cmd += ["--metrics", f"{tmp}/m.json", "--report", f"{tmp}/r.json"]
                cmd += ["--set", f"predict.align={method}", "--set", "predict.missing=drop"]
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True)
                times[method].append(time.perf_counter() - t0)
    out = {m: min(v) for m, v in times.items()}
    out["ratio"] = out["auto"] / out["none"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="models/scala2021")
    parser.add_argument("--raw-dir", default="data/raw")
    parser.add_argument("--prepared-dir", default="data/prepared/scala2021")
    parser.add_argument(
        "--timing-only", action="store_true", help="only time predict with and without align"
    )
    parser.add_argument("--cells", type=int, default=10_000)
    args = parser.parse_args()
    timing = predict_timing(args.store, args.cells)
    print(
        f"predict {args.cells} cells: align none {timing['none']:.1f} s, auto "
        f"{timing['auto']:.1f} s, ratio {timing['ratio']:.2f} (target <= 2)",
        flush=True,
    )
    if args.timing_only:
        return

    from ephys2expr import paths
    from ephys2expr.model.store import load_model_store
    from ephys2expr.predict.align import family_gaussians
    from ephys2expr.readers.cadwell import read_cadwell
    from ephys2expr.validate.transfer.scores import METHODS, cadwell_coverage, score_set
    from ephys2expr.validate.transfer.sets import TransferSet, transfer_sets

    pd.set_option("display.width", 200)
    store = load_model_store(args.store)
    model = family_gaussians(store)
    cadwell = read_cadwell(
        *(
            paths.in_raw_dir(args.raw_dir, p)
            for p in (
                paths.CADWELL_EXPR,
                paths.CADWELL_META,
                paths.CADWELL_EPHYS,
                paths.CADWELL_SDRF,
            )
        )
    )
    sets = transfer_sets(Path(args.raw_dir), Path(args.prepared_dir), cadwell)
    for v in ("v6", "v10"):  # the reviewer's batch: the cells with every feature (validate
        s = sets[f"allen_{v}"]  # has the aspiny cells as a batch of their own)
        keep = s.cells.reindex(columns=store.features).notna().all(axis=1).to_numpy()
        sets[f"allen_{v}_complete"] = TransferSet(
            s.cells[keep],
            s.truth[keep],
            [e for e, k in zip(s.expected, keep, strict=True) if k],
            s.known[keep],
            cre=True,
        )
    rows = []
    for name, s in sets.items():
        for method in METHODS:
            free = score_set(store, model, s, method, False, 20)
            known = score_set(store, model, s, method, True, 20)
            rows.append(
                {
                    "set": name,
                    "method": method,
                    "excinh": free["exc_inh_agreement"],
                    "excinh_resp": _resp_agreement(store, model, s, method),
                    "fam_known": known["family_agreement"],
                    "ece_known": known["family_ece"],
                    "excinh_known": known["exc_inh_agreement"],
                    "mixed": free.get("mixed"),
                }
            )
        print(pd.DataFrame([r for r in rows if r["set"] == name]).round(3).to_string(), flush=True)
    table = pd.DataFrame(rows)
    print(
        table.pivot(index="set", columns="method", values="excinh")
        .round(3)
        .reindex(columns=list(METHODS))
        .to_string()
    )
    print(cadwell_coverage(store, cadwell).round(3).to_string())
    print(held_out_scala(args.prepared_dir).round(4).to_string())


if __name__ == "__main__":
    main()
