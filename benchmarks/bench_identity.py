"""Benchmark what the identity models cost the train stage of a per-cell source, in one run.

Not a test. Runs the train stage's work (:func:`ephys2expr.train.run.train_from_prepared`,
every feature set, the settings of ``params.yaml`` for the source) on the Scala 2021 cells
twice:

1. ``train.model: lasso`` - the stage before identity: nested CV, baselines, final refit
   and the 1,000-permutation refit null per feature set;
2. ``train.model: best`` (the default) - the same lasso without its refit null, plus the
   family and type classifiers (nested grouped CV), the mixtures, the per-gene choice and
   the held-out null;

and prints each wall time, the per-set times (the stage's own log lines), the genes with
out-of-fold r2 > 0.1 and the ratio (target of issue #22: <= 1.5x). Run:
``python -m benchmarks.bench_identity [--prepared-dir data/prepared/scala2021]``.
"""

from __future__ import annotations

import argparse
import logging
import time

from benchmarks.bench_feature_sets import _SetTimes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared-dir", default="data/prepared/scala2021")
    parser.add_argument("--source", default="scala2021")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()

    from ephys2expr.train.run import train_from_prepared
    from ephys2expr.train.settings import TrainSettings

    handler = _SetTimes()
    logging.getLogger("ephys2expr").addHandler(handler)
    logging.getLogger("ephys2expr").setLevel(logging.INFO)
    wall = {}
    for model in ("lasso", "best"):
        s = TrainSettings.from_params(args.params, [f"model={model}"], source=args.source)
        handler.times.clear()
        t0 = time.perf_counter()
        out = train_from_prepared(args.prepared_dir, s, source=args.source)
        wall[model] = time.perf_counter() - t0
        per_set = ", ".join(f"{n} {t:.0f} s" for n, t in handler.times.items())
        frac = out.report["model"]["frac_r2_gt_0.1"]
        print(
            f"model {model:>5}: {wall[model]:6.1f} s ({per_set}); full set: genes with "
            f"out-of-fold r2 > 0.1 {100 * frac:.1f} %",
            flush=True,
        )
    print(f"ratio: {wall['best'] / wall['lasso']:.2f}x model lasso (target of issue #22: <= 1.5x)")


if __name__ == "__main__":
    main()
