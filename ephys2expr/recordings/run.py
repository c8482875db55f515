"""The features stage's whole job: recordings in, one row of features and QC per file out.

Files are read and measured independently, in parallel processes (``features.n_jobs``),
with a progress bar; the table comes back in input order, so the same files give the same
bytes whatever the number of processes.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ephys2expr.errors import InputError
from ephys2expr.recordings.abf import read_abf
from ephys2expr.recordings.analysis import analyse
from ephys2expr.recordings.columns import RECORDING_COLUMNS
from ephys2expr.recordings.definitions import EXTRACTED, extract
from ephys2expr.recordings.nwb import read_nwb
from ephys2expr.recordings.recording import Recording
from ephys2expr.recordings.settings import FeaturesSettings

log = logging.getLogger("ephys2expr")

READERS = {".abf": read_abf, ".nwb": read_nwb}
# Per file, beside the features: what was read (the QC columns of each feature follow them).
FILE_COLUMNS = RECORDING_COLUMNS


def read_recording(path: str | os.PathLike) -> Recording:
    """Read an ABF or NWB file (by its suffix) into a :class:`Recording`."""
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise InputError(f"{path}: not a recording (.abf or .nwb)")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return reader(path)


def list_recordings(inputs: list[str | os.PathLike]) -> list[Path]:
    """The recordings named by ``inputs``: files as given, folders searched recursively
    (sorted); a folder without recordings, a missing path or a repeated cell id is an error."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files = sorted(p for p in item.rglob("*") if p.suffix.lower() in READERS)
            if not files:
                raise InputError(f"{item}: no .abf or .nwb file in this folder")
            found.extend(files)
        elif item.exists() or item.suffix.lower() in READERS:
            found.append(item)
        else:
            raise InputError(f"{item}: no such file or folder")
    seen: dict[str, Path] = {}
    for path in found:
        if path.stem in seen:
            raise InputError(f"{path}: cell id {path.stem!r} again (also {seen[path.stem]})")
        seen[path.stem] = path
    return found


def _steps_text(a) -> str:
    amps = sorted({round(s.step.amplitude, 1) for s in a.sweeps})
    return "" if not amps else f"{amps[0]:g}..{amps[-1]:g} ({len(amps)} steps)"


def features_of(path: str | os.PathLike, settings: FeaturesSettings) -> dict:
    """One output row: ``cell_id``, the features, each one's ``_sweep`` and ``_qc``, and
    the file columns (:data:`FILE_COLUMNS`)."""
    return row_of(read_recording(path), settings)


def row_of(rec: Recording, settings: FeaturesSettings) -> dict:
    """The output row of a recording already read (see :func:`features_of`)."""
    path = rec.path
    a = analyse(rec, settings)
    row: dict = {"cell_id": rec.cell_id}
    values = extract(a)
    for name in EXTRACTED:
        row[name] = float(values[name].value)
    for name in EXTRACTED:
        row[f"{name}_sweep"] = " ".join(str(n) for n in values[name].sweeps)
        row[f"{name}_qc"] = values[name].reason
    file_qc = [r for r in (a.reason, a.spike_reason, a.spontaneous, *rec.notes) if r]
    if a.block_from is not None:
        file_qc.append(f"depolarisation block from {a.block_from:+g} pA")
    row.update(
        file=str(path),
        format=Path(path).suffix.lower().lstrip("."),
        sampling_khz=rec.fs / 1000.0,
        n_sweeps=len(rec.sweeps),
        steps_pa=_steps_text(a),
        qc="; ".join(dict.fromkeys(file_qc)),
    )
    return row


def _one(args) -> dict:
    path, settings = args
    return features_of(path, settings)


def extract_features(
    inputs: list[str | os.PathLike], settings: FeaturesSettings, progress: bool = True
) -> pd.DataFrame:
    """The feature table of every recording under ``inputs`` (index ``cell_id``, input order).

    The first file that cannot be read stops the run with one :class:`InputError` line
    naming it (a truncated or corrupt file); a readable but unusable one gets NaN features
    with the reason in its ``_qc`` columns.
    """
    files = list_recordings(inputs)
    jobs = [(p, settings) for p in files]
    n = min(settings.n_jobs, len(files))
    bar = dict(total=len(files), desc="recordings", unit="file", disable=not progress)
    rows = []
    with ProcessPoolExecutor(max_workers=n) if n > 1 else nullcontext() as pool:
        done = pool.map(_one, jobs) if n > 1 else map(_one, jobs)
        for row in tqdm(done, **bar):
            rows.append(row)
            if not progress:  # a log line per file instead of the bar (DVC's log)
                log.info(
                    "%s: %d of %d features (%s)",
                    row["file"],
                    sum(np.isfinite(row[f]) for f in EXTRACTED),
                    len(EXTRACTED),
                    row["qc"] or "ok",
                )
    table = pd.DataFrame(rows).set_index("cell_id")
    measured = int(np.isfinite(table[EXTRACTED].to_numpy()).sum())
    log.info(
        "features of %d recording(s): %d of %d values measured",
        len(files),
        measured,
        table[EXTRACTED].size,
    )
    return table


__all__ = [
    "FILE_COLUMNS",
    "extract_features",
    "features_of",
    "list_recordings",
    "read_recording",
    "row_of",
]
