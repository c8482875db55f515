"""Benchmark of feature extraction from raw recordings (not a test; prints timings, ratio).

Times, in one run on one core, the 5 shared recordings (data/raw/recordings) through

1. ours: :func:`ephys2expr.recordings.run.extract_features` (read, find the steps, detect
   and measure spikes, every feature with its QC), ``n_jobs=1``;
2. eFEL called directly (the maintained extractor, C++): the same files read by the same
   readers, every step sweep handed to ``efel.get_feature_values`` for the per-sweep
   values the 15 features need (tests/efel_reference.py ``PER_SWEEP``);
3. reading alone (pyABF / h5py), the share of both that is I/O.

Target (issue #31): ours <= 1.5 x eFEL's time and < 10 s in total. Run:
``python -m benchmarks.bench_features [--repeat 5]``; the best of ``--repeat`` is reported
(the machine is shared).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core, before numpy starts its thread pools

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.timing import best_of  # noqa: E402
from ephys2expr.recordings.run import extract_features, list_recordings, read_recording  # noqa: E402
from ephys2expr.recordings.settings import FeaturesSettings  # noqa: E402
from ephys2expr.recordings.sweeps import find_steps  # noqa: E402

RECORDINGS = Path("data/raw/recordings")


def efel_direct(files, settings) -> int:
    """eFEL on every step sweep of every file; returns the number of sweeps."""
    import efel

    from tests.efel_reference import PER_SWEEP

    n = 0
    for path in files:
        rec = read_recording(path)
        steps, _ = find_steps(rec, settings)
        traces = []
        for step in steps:
            fs = step.sweep.fs
            traces.append(
                {
                    "T": np.arange(step.sweep.v.size) * 1000.0 / fs,
                    "V": step.sweep.v,
                    "stim_start": [step.onset * 1000.0 / fs],
                    "stim_end": [step.offset * 1000.0 / fs],
                }
            )
        efel.get_feature_values(traces, PER_SWEEP, raise_warnings=False)
        n += len(traces)
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    settings = FeaturesSettings(n_jobs=1)
    files = list_recordings([RECORDINGS])
    extract_features(files, settings, progress=False)  # warm up imports and caches
    sweeps = efel_direct(files, settings)
    ours = best_of(lambda: extract_features(files, settings, progress=False), args.repeat)
    theirs = best_of(lambda: efel_direct(files, settings), args.repeat)
    read = best_of(lambda: [read_recording(p) for p in files], args.repeat)
    print(f"{len(files)} recordings, {sweeps} step sweeps, one core, best of {args.repeat}")
    print(f"  ours (all 15 features + QC):  {ours:6.3f} s")
    print(f"  eFEL called directly:         {theirs:6.3f} s")
    print(f"  reading alone:                {read:6.3f} s")
    print(f"  ours / eFEL = {ours / theirs:.2f} (target <= 1.5); total {ours:.2f} s (< 10 s)")


if __name__ == "__main__":
    main()
