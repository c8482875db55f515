"""Benchmark what the feature sets cost the train stage, in one run.

Not a test. Runs the train stage's work (:func:`ephys2expr.train.run.train_from_prepared`:
nested CV, baselines, final refit and the 1,000-permutation null) on the real type-mean
table (``data/prepared/rds``) twice, with the settings of ``params.yaml``:

1. the full feature set only (``train.feature_sets: {full: []}``) - the obvious alternative,
   what the stage cost before feature sets;
2. every set of ``train.feature_sets`` (the default four);

and prints each wall time, the per-set times (from the stage's own log lines) and the
ratio. Run: ``python -m benchmarks.bench_feature_sets [--prepared-dir data/prepared/rds]``.
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

    from ephys2expr.train.run import train_from_prepared
    from ephys2expr.train.settings import TrainSettings

    handler = _SetTimes()
    logging.getLogger("ephys2expr").addHandler(handler)
    logging.getLogger("ephys2expr").setLevel(logging.INFO)
    settings = TrainSettings.from_params(args.params)
    one = TrainSettings.from_params(args.params, ["feature_sets={full: []}"])
    wall = {}
    for label, s in (("full set only", one), (f"{len(settings.feature_sets)} sets", settings)):
        handler.times.clear()
        t0 = time.perf_counter()
        out = train_from_prepared(args.prepared_dir, s)
        wall[label] = time.perf_counter() - t0
        per_set = ", ".join(f"{n} {t:.0f} s" for n, t in handler.times.items())
        print(f"{label:>14}: {wall[label]:6.1f} s  ({per_set}; genes beating every baseline "
              f"{dict(out.feature_sets['genes_beating_all'])})", flush=True)  # fmt: skip
    a, b = wall.values()
    print(f"ratio: {b / a:.2f}x the full set alone (target of issue #11: <= 1.5x)")


if __name__ == "__main__":
    main()
