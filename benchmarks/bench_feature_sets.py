"""Benchmark what the feature sets cost the train stage, and an on-demand set, in one run.

Not a test. Runs the train stage's work (:func:`ephys2expr.train.run.train_from_prepared`:
nested CV, baselines, final refit and the 1,000-permutation null) on the real type-mean
table (``data/prepared/rds``) twice, with the settings of ``params.yaml``:

1. the full feature set only (no derived sets, ``train.feature_sets: {}``) - the obvious
   alternative, what the stage cost before feature sets;
2. every set the stage trains: the full set, the sets derived from the missing patterns of
   ``cells.inputs`` (``cells.min_features``; ``train.min_set_cells``: rarer patterns without
   their own null) and
   ``train.feature_sets``;

then fits one set on demand from the second run's store (the 3 v6 cells without ``aphw``:
:func:`ephys2expr.train.on_demand.fit_feature_set`) with the null off and with it on, in a
fresh cache. Prints each wall time, the per-set times (from the stage's own log lines) and
the ratio. Run: ``python -m benchmarks.bench_feature_sets [--prepared-dir data/prepared/rds]``.
"""

from __future__ import annotations

import argparse
import logging
import re
import time


class _SetTimes(logging.Handler):
    """Collects the stage's "feature set 'x' trained in N s" log lines."""

    def __init__(self):
        super().__init__()
        self.times: dict[str, float] = {}

    def emit(self, record):
        m = re.match(r"feature set '(.+)' trained in (\d+) s", record.getMessage())
        if m:
            self.times[m.group(1)] = float(m.group(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared-dir", default="data/prepared/rds")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()

    import tempfile

    from ephys2expr.cell_inputs import CellSettings
    from ephys2expr.train.on_demand import fit_feature_set
    from ephys2expr.train.run import train_from_prepared
    from ephys2expr.train.settings import TrainSettings

    handler = _SetTimes()
    logging.getLogger("ephys2expr").addHandler(handler)
    logging.getLogger("ephys2expr").setLevel(logging.INFO)
    settings = TrainSettings.from_params(args.params)
    cells = CellSettings.from_params(args.params)
    one = TrainSettings.from_params(args.params, ["feature_sets={}"])
    wall = {}
    runs = (("full set only", one, ()), ("every set", settings, cells.inputs))
    for label, s, inputs in runs:
        handler.times.clear()
        t0 = time.perf_counter()
        out = train_from_prepared(
            args.prepared_dir, s, cell_inputs=inputs, min_features=cells.min_features
        )
        wall[label] = time.perf_counter() - t0
        per_set = ", ".join(f"{n} {t:.0f} s" for n, t in handler.times.items())
        print(
            f"{label:>14}: {wall[label]:6.1f} s  ({len(handler.times)} sets: {per_set}; "
            f"genes beating every baseline {dict(out.feature_sets['genes_beating_all'])})",
            flush=True,
        )
    a, b = wall.values()
    print(f"ratio: {b / a:.2f}x the full set alone (issue #21: all sets within 124-146 s)")
    features = [f for f in out.store.features if f != "aphw"]
    with tempfile.TemporaryDirectory() as cache:
        for n_perm in (0, None):
            t0 = time.perf_counter()
            fit_feature_set(out.store, features, n_permutations=n_perm, cache_dir=cache)
            label = "null off" if n_perm == 0 else "null on"
            print(
                f"on-demand set no_aphw, {label}: {time.perf_counter() - t0:.1f} s "
                "(issue #21: null off < 30 s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
