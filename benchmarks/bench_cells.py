"""Benchmark training on Patch-seq cells (Scala et al. 2021) against scikit-learn, in one run.

Not a test. The work timed is the train stage without the permutation null on the real
per-cell tables (1,070 cells x 11 features x 1,819 genes detected in >= 10 % of cells):
``alpha: auto`` (30 alphas), outer 5-fold CV grouped by animal, the inner alpha search grouped
by animal too, the baselines and the final refit. Printed:

1. ours - :func:`ephys2expr.train.evaluate.train_and_evaluate` (all genes in one chunk, and in
   gene chunks of 256 as the streaming / Dask paths run them; the results must be equal);
2. a per-gene scikit-learn loop on the same data and the same folds: for every gene and
   outer fold, ``Pipeline(StandardScaler, LassoCV(alphas=<same 30>, cv=<the same grouped
   inner splits>))``. It is timed on a random subset of genes and scaled linearly to all
   genes (printed as such), and its out-of-fold r2 is compared with ours on that subset
   (LassoCV averages the per-fold MSE and standardises once per outer fold, we pool the
   inner MSE and standardise per inner fold, so the chosen alphas can differ slightly).

Run: ``python -m benchmarks.bench_cells`` (``--genes N`` sets the sklearn subset, default 20).
The tables are read from ``data/prepared/scala2021`` (``dvc repro prepare@scala2021``) or,
if absent, prepared in memory from ``data/raw``.
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")

PREPARED = Path("data/prepared/scala2021")


def load_cells():
    """(features, targets, types) of the Scala cells: prepared tables or prepared now."""
    from ephys2expr.train.inputs import load_training_inputs, training_paths

    if (PREPARED / "train_targets.parquet").is_file():
        return load_training_inputs(*training_paths(PREPARED).values())
    from ephys2expr.prepare.run import prepare
    from ephys2expr.prepare.settings import PrepareSettings

    prepared = prepare("data/raw", PrepareSettings.from_params("params.yaml"), "scala2021")
    return prepared.train_features, prepared.train_targets, prepared.train_types


def sklearn_loop(X, Y, folds, groups, alphas, genes):
    """Per-gene LassoCV loop over the same outer folds and grouped inner splits."""
    from sklearn.linear_model import LassoCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ephys2expr.model.path import inner_folds

    inner = [inner_folds(len(tr), 5, 0, groups[tr]) for tr, _ in folds]
    oof = np.empty((X.shape[0], len(genes)))
    start = time.perf_counter()
    for j, g in enumerate(genes):
        for (tr, te), splits in zip(folds, inner, strict=True):
            model = make_pipeline(StandardScaler(), LassoCV(alphas=alphas, cv=splits))
            oof[te, j] = model.fit(X[tr], Y[tr, g]).predict(X[te])
    return time.perf_counter() - start, oof


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genes", type=int, default=20, help="genes in the sklearn subset")
    args = parser.parse_args()

    import numba

    from ephys2expr.train.cv.folds import outer_folds, pooled_scores
    from ephys2expr.train.evaluate import train_and_evaluate
    from ephys2expr.train.settings import TrainSettings

    features, targets, types = load_cells()
    settings = TrainSettings.from_params("params.yaml", ["n_permutations=0"])
    n, g = len(features), len(targets)
    print(
        f"{n} cells of {types['group'].nunique()} animals x {features.shape[1]} features x "
        f"{g:,} genes; cv {settings.cv} -> group_kfold ({settings.n_folds} folds), "
        f"{settings.n_alphas} alphas, inner {settings.inner_folds}-fold grouped by animal; "
        f"numba threads {numba.get_num_threads()}; wall-clock times on a shared machine"
    )
    train_and_evaluate(features, targets.iloc[:20], types, settings)  # numba compile / cache
    start = time.perf_counter()
    whole = train_and_evaluate(features, targets, types, settings)
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    chunked = train_and_evaluate(features, targets, types, settings, gene_chunk=256)
    t_chunked = time.perf_counter() - start
    diff = np.nanmax(np.abs(whole.per_gene["cv_r2"] - chunked.per_gene["cv_r2"]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    s = whole.seconds
    print(
        f"ours: {t_ours:.1f} s (nested CV {s['nested_cv']:.1f} s, baselines "
        f"{s['baselines']:.1f} s, final refit {s['final_fit']:.1f} s); in gene chunks of 256: "
        f"{t_chunked:.1f} s, max |cv r2 difference| {diff:.1e}; peak RSS {peak:.0f} MB"
    )

    X = features.to_numpy()
    Y = np.ascontiguousarray(targets.to_numpy().T)
    groups = types.loc[features.index, "group"].astype(str).to_numpy()
    folds = outer_folds(n, "group_kfold", settings.n_folds, cell_groups=groups)
    genes = np.sort(np.random.default_rng(0).choice(g, size=min(args.genes, g), replace=False))
    t_loop, oof = sklearn_loop(X, Y, folds, groups, settings.alphas, genes)
    t_all = t_loop * g / len(genes)
    sk_r2, _ = pooled_scores(Y[:, genes], oof)
    our_r2 = whole.per_gene["cv_r2"].to_numpy()[genes]
    print(
        f"per-gene sklearn LassoCV loop: {t_loop:.1f} s for {len(genes)} genes, scaled "
        f"x{g / len(genes):.0f} to all genes: {t_all:.0f} s -> ours is {t_all / t_ours:.0f}x "
        f"faster | out-of-fold r2 on those genes: median ours {np.median(our_r2):.3f}, sklearn "
        f"{np.median(sk_r2):.3f}, max |difference| {np.max(np.abs(our_r2 - sk_r2)):.3f}"
    )


if __name__ == "__main__":
    main()
