"""Scala et al. 2021 (mouse primary motor cortex Patch-seq) as a paired training source.

Files (``<raw>/scala2021/``, see ``PROVENANCE.md``): ``m1_patchseq_ephys_features.csv``
(29 features of 1,328 cells, column ``cell id``), ``m1_patchseq_meta_data.csv`` (TAB-separated
despite the suffix, 1,329 cells: ``Cell``, ``Mouse``, ``Exon reads``, ``RNA family``,
``RNA type`` ...), ``motor_data_filtered.rda`` (R ``save()``; ``gdata`` = exon read counts of
1,286 genes x 1,208 cells) and ``gene_counts_hvg1000.csv`` (1,000 genes x 1,213 cells, cell
columns written without underscores: ``20180918sample1`` is ``20180918_sample_1``).

Feature mapping
---------------
The authors' features come from their extraction code (berenslab/mini-atlas,
``code/preprocess-ephys-files.ipynb`` with ``ephys_extractor.py``/``ephys_features.py``:
``extract_spike_features``/``get_cell_features``, stimulus window ``start=0.1`` s to
``end=0.7`` s, i.e. 600 ms current steps in 20 pA increments). This project's names and units
are those of :data:`ephys2expr.features.FEATURE_DESCRIPTIONS` (Allen-derived):

========== ================================= ================ ===============================
project    Scala column                      conversion       note
========== ================================= ================ ===============================
rin        Input resistance (MOhm)           as is            median over hyperpolarising
                                                              steps (Allen: a fit over them)
rmp        Resting membrane potential (mV)   as is
apthr      AP threshold (mV)                 as is            first AP, first step with APs
apamp      AP amplitude (mV)                 as is            peak - threshold, as here
aphw       AP width (ms)                     as is            width at half the
                                                              threshold-to-peak height
tau        Membrane time constant (ms)       as is
ahpamp     Afterhyperpolarization (mV)       negated          Scala: fast trough - threshold
                                                              (< 0 below threshold); here:
                                                              threshold - fast trough
rheo       Rheobase (pA)                     as is            Scala: f-I fit between the last
                                                              silent and first spiking step
maxfreq    Max number of APs                 / 0.6 s          APs counted in the 600 ms step:
                                                              mean rate over the step (Allen's
                                                              is over a 1 s step)
cap        tau, rin                          1000 * tau / rin capacitance (pF), derived as for
                                                              Allen cells
sag        Sag ratio                         1 - 1 / ratio    Scala: (Vpeak - Vrest) /
                                                              (Vsteady - Vrest); Allen/here:
                                                              (Vpeak - Vsteady) /
                                                              (Vpeak - Vrest). Scala measures
                                                              it at the most hyperpolarising
                                                              step, Allen near -100 mV
latency    Latency (ms)                      / 1000 (s)       step onset to the first AP's
                                                              threshold, first step with APs
isi_adapt  ISI adaptation index              as is, NEW name  2nd ISI / 1st ISI, median over
                                                              the first 5 spiking steps; not
                                                              ``adratio`` (Allen: 1st ISI /
                                                              mean ISI at the max-rate sweep)
========== ================================= ================ ===============================

Not available from Scala: ``adratio``, ``f_i_curve_slope``, ``avg_isi``. The ``edata``
object of the ``.rda`` holds the same 29 features (R-mangled names) for the 1,208 cells of
``gdata``, identical to the CSV; the CSV is read because it covers every cell.

Counts
------
The two gene subsets share 308 genes. Their values agree on every cell but one: for
``20171207_sample_6`` all 308 differ (two different libraries of the cell; the ``.rda``'s
counts hold 6x less of ``Exon reads`` than other cells' do). Such a cell is excluded
(``counts differ between gene subsets``; ``on_disagreement="rda"`` keeps it with the
``.rda`` values for the shared genes). A cell needs counts in every subset read
(``missing counts (<subset> subset)`` otherwise). Library size = ``Exon reads``; for about one
cell in ten the counted genes hold a share of it far off the others' (median share 0.41,
core spread about 7 %; outliers from 130x below to 900x above, 72 cells with more counted
reads than the library itself), so ``library_tolerance`` (default 3) excludes those.
Broad type from ``RNA family``: Pvalb, Sst, Vip, Lamp5, Sncg -> Inh; IT, ET, CT, NP -> Exc.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.readers.columns import numeric_column, read_table
from ephys2expr.readers.counts import check_counts, r_matrix_frame, read_counts
from ephys2expr.readers.paired_layout import MetadataColumns, PairedSet, assemble_paired, indexed
from ephys2expr.readers.r import read_r

EPHYS_FILE = "m1_patchseq_ephys_features.csv"
META_FILE = "m1_patchseq_meta_data.csv"
RDA_FILE = "motor_data_filtered.rda"
HVG_FILE = "gene_counts_hvg1000.csv"
SUBSETS = ("rda", "hvg1000")

# Current step duration: the extraction window 0.1-0.7 s of the authors' code (PROVENANCE.md).
STEP_DURATION_S = 0.6
LIBRARY_TOLERANCE = 3.0

_RIN = "Input resistance (MOhm)"
_TAU = "Membrane time constant (ms)"
Conversion = tuple[tuple[str, ...], Callable[[dict[str, pd.Series]], pd.Series]]

# Project feature -> (Scala columns, conversion); the table of the module docstring.
FEATURE_MAP: dict[str, Conversion] = {
    "rin": ((_RIN,), lambda s: s[_RIN]),
    "rmp": (("Resting membrane potential (mV)",), lambda s: s["Resting membrane potential (mV)"]),
    "apthr": (("AP threshold (mV)",), lambda s: s["AP threshold (mV)"]),
    "apamp": (("AP amplitude (mV)",), lambda s: s["AP amplitude (mV)"]),
    "aphw": (("AP width (ms)",), lambda s: s["AP width (ms)"]),
    "tau": ((_TAU,), lambda s: s[_TAU]),
    "ahpamp": (("Afterhyperpolarization (mV)",), lambda s: -s["Afterhyperpolarization (mV)"]),
    "rheo": (("Rheobase (pA)",), lambda s: s["Rheobase (pA)"]),
    "maxfreq": (("Max number of APs",), lambda s: s["Max number of APs"] / STEP_DURATION_S),
    "cap": ((_TAU, _RIN), lambda s: 1000 * s[_TAU] / s[_RIN]),
    "sag": (("Sag ratio",), lambda s: 1 - 1 / s["Sag ratio"]),
    "latency": (("Latency (ms)",), lambda s: s["Latency (ms)"] / 1000),
    "isi_adapt": (("ISI adaptation index",), lambda s: s["ISI adaptation index"]),
}
SCALA_FEATURES: list[str] = list(FEATURE_MAP)

META_ID = "Cell"
META_COLUMNS = MetadataColumns(
    library="Exon reads",
    group="Mouse",
    type="RNA type",
    family="RNA family",
    extra={"cre": "Cre", "layer": "Inferred layer", "type_confidence": "RNA type confidence"},
)


def map_features(
    table: pd.DataFrame, where: str, names: Sequence[str] | None = None
) -> pd.DataFrame:
    """Scala's ephys table (indexed by cell) -> the project's features (float64)."""
    names = list(SCALA_FEATURES if names is None else names)
    unknown = [n for n in names if n not in FEATURE_MAP]
    if unknown:
        raise InputError(f"{where}: no Scala mapping for feature(s) {unknown} ({SCALA_FEATURES})")
    needed = sorted({c for n in names for c in FEATURE_MAP[n][0]})
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise InputError(f"{where}: missing feature column(s) {missing}")
    src = {c: numeric_column(table, c, where) for c in needed}
    with np.errstate(divide="ignore", invalid="ignore"):
        out = pd.DataFrame({n: FEATURE_MAP[n][1](src) for n in names}, index=table.index)
    return out.replace([np.inf, -np.inf], np.nan).astype(np.float64)


def hvg_cell_ids(columns: pd.Index, cells: pd.Index, where: str) -> pd.Index:
    """Cell columns written without underscores -> the metadata's ``Cell`` ids."""
    if columns.isin(cells).all():
        return columns
    key = pd.Series(cells, index=cells.str.replace("_", "", regex=False))
    if key.index.has_duplicates:
        dup = key.index[key.index.duplicated()][0]
        raise InputError(f"{where}: two metadata cells read '{dup}' without underscores")
    plain = columns.str.replace("_", "", regex=False)
    absent = columns[~plain.isin(key.index)]
    if len(absent):
        raise InputError(
            f"{where}: cell column '{absent[0]}' is no metadata Cell, with or without "
            f"underscores ({len(columns) - len(absent)} of {len(columns)} match)"
        )
    return pd.Index(key.loc[plain].to_numpy(), name=columns.name)


def merge_gene_subsets(
    subsets: dict[str, pd.DataFrame], on_disagreement: str = "exclude"
) -> tuple[pd.DataFrame, dict[str, str], dict]:
    """Merge genes x cells count subsets on their common cells, checking shared genes.

    Parameters
    ----------
    subsets : dict
        Name -> genes x cells counts, in order of preference (the first wins for genes
        several subsets hold, where a cell is kept despite a disagreement).
    on_disagreement : {"exclude", "rda"}
        What to do with a cell whose shared genes differ: exclude it, or keep the first
        subset's values (``"rda"``: the ``.rda`` comes first).

    Returns
    -------
    counts : DataFrame
        Union of the genes (first subset's order, then the others' new genes) x the cells
        in every subset (minus excluded ones).
    reasons : dict
        Cell id -> exclusion reason for cells left out.
    report : dict
        Cells and genes per subset, and the agreement on shared genes.
    """
    if on_disagreement not in ("exclude", "rda"):
        raise InputError(f"on_disagreement must be 'exclude' or 'rda', not {on_disagreement!r}")
    names = list(subsets)
    frames = list(subsets.values())
    common = frames[0].columns
    for frame in frames[1:]:
        common = common.intersection(frame.columns, sort=False)
    reasons: dict[str, str] = {}
    for name in names:
        others = [n for n in names if n != name]
        for cell in frames[names.index(name)].columns.difference(common):
            for other in others:  # the subset(s) lacking the cell name the reason
                if cell not in subsets[other].columns:
                    reasons.setdefault(cell, f"missing counts ({other} subset)")
    report: dict = {
        n: {"genes": int(f.shape[0]), "cells": int(f.shape[1])} for n, f in subsets.items()
    }
    report["cells_in_all_subsets"] = int(len(common))
    differing = pd.Index([])
    first = frames[0]
    for name, frame in zip(names[1:], frames[1:], strict=True):
        bad_cells, report[f"shared_genes_{names[0]}_{name}"] = _compare_shared(
            first, frame, common, names[0], name
        )
        differing = differing.union(bad_cells)
    if on_disagreement == "exclude":
        for cell in differing:
            reasons[str(cell)] = "counts differ between gene subsets"
        common = common.difference(differing, sort=False)
    report["cells_differing_kept_with"] = names[0] if on_disagreement == "rda" else None
    parts = [first[common]]
    seen = first.index
    for frame in frames[1:]:
        new = frame.index.difference(seen, sort=False)
        parts.append(frame.loc[new, common])
        seen = seen.append(new)
    merged = pd.concat(parts, axis=0)
    merged.index.name, merged.columns.name = "gene", "cell_id"
    report["merged"] = {"genes": int(merged.shape[0]), "cells": int(merged.shape[1])}
    return merged, reasons, report


def _compare_shared(first, frame, common, first_name: str, name: str):
    """The genes two subsets share, compared over the common cells: ``(cells whose values
    differ, the report's agreement entry)``."""
    shared = first.index.intersection(frame.index, sort=False)
    a = first.loc[shared, common].to_numpy()
    b = frame.loc[shared, common].to_numpy()
    diff = np.abs(a - b)
    bad_cells = common[(diff > 0).any(axis=0)]
    g, c = np.unravel_index(int(diff.argmax()), diff.shape) if diff.size else (0, 0)
    ok_cells = ~(diff > 0).any(axis=0)
    entry = {
        "genes": int(len(shared)),
        "cells_compared": int(len(common)),
        "values_identical_fraction": float((diff == 0).mean()) if diff.size else 1.0,
        "genes_identical_in_all_cells": int((diff == 0).all(axis=1).sum()),
        "genes_identical_in_agreeing_cells": int((diff[:, ok_cells] == 0).all(axis=1).sum()),
        "cells_differing": [str(x) for x in bad_cells],
        "genes_differing_in_those_cells": int((diff[:, ~ok_cells] > 0).any(axis=1).sum()),
        "largest_difference": {
            "gene": str(shared[g]) if len(shared) else "",
            "cell": str(common[c]) if len(common) else "",
            first_name: float(a[g, c]) if diff.size else 0.0,
            name: float(b[g, c]) if diff.size else 0.0,
        },
    }
    return bad_cells, entry


def scala_dir(raw_dir: str | os.PathLike) -> Path:
    """The folder holding the Scala files: ``<raw_dir>/scala2021`` or ``raw_dir`` itself."""
    raw_dir = Path(raw_dir)
    return raw_dir / "scala2021" if (raw_dir / "scala2021").is_dir() else raw_dir


def read_scala2021(
    raw_dir: str | os.PathLike,
    *,
    subsets: Sequence[str] = SUBSETS,
    feature_names: Sequence[str] | None = None,
    on_disagreement: str = "exclude",
    library_tolerance: float | None = LIBRARY_TOLERANCE,
) -> PairedSet:
    """Read Scala et al. 2021 as a :class:`~ephys2expr.readers.paired_layout.PairedSet`.

    Parameters
    ----------
    raw_dir : path-like
        The raw data folder (holding ``scala2021/``) or the ``scala2021`` folder itself.
    subsets : sequence of {"rda", "hvg1000"}
        Gene subsets to read; a cell needs counts in each (``("rda",)``: 1,286 genes).
    feature_names : sequence of str, optional
        Features to map (default all of :data:`SCALA_FEATURES`).
    on_disagreement : {"exclude", "rda"}
        Cells whose shared genes differ between subsets: excluded, or kept with the
        ``.rda`` values.
    library_tolerance : float or None
        Exclude cells whose counted share of ``Exon reads`` is off the median share by
        more than this factor (``None``: only cells with more counted reads than the
        library).

    Returns
    -------
    PairedSet
        With ``report["gene_subsets"]`` (agreement of the shared genes) and
        ``report["feature_map"]`` added.
    """
    folder = scala_dir(raw_dir)
    unknown = [s for s in subsets if s not in SUBSETS]
    if unknown or not subsets:
        raise InputError(f"Scala 2021 gene subsets must be among {list(SUBSETS)}, not {unknown}")
    ephys_path, meta_path = folder / EPHYS_FILE, folder / META_FILE
    meta = indexed(read_table(meta_path), META_ID, str(meta_path))
    ephys = indexed(read_table(ephys_path), "cell id", str(ephys_path))
    features = map_features(ephys, str(ephys_path), feature_names)

    frames: dict[str, pd.DataFrame] = {}
    if "rda" in subsets:
        path = folder / RDA_FILE
        gdata = r_matrix_frame(read_r(path, "gdata"), path)
        check_counts(gdata.to_numpy(), gdata.index, gdata.columns, f"{path} (gdata)")
        frames["rda"] = gdata
    if "hvg1000" in subsets:
        path = folder / HVG_FILE
        hvg = read_counts(path)
        hvg.columns = hvg_cell_ids(hvg.columns, meta.index, str(path))
        frames["hvg1000"] = hvg
    counts, reasons, subset_report = merge_gene_subsets(frames, on_disagreement)
    count_src = " + ".join(str(folder / (RDA_FILE if s == "rda" else HVG_FILE)) for s in frames)

    paired = assemble_paired(
        features,
        counts,
        meta,
        META_COLUMNS,
        {"features": str(ephys_path), "counts": count_src, "metadata": str(meta_path)},
        library_tolerance=library_tolerance,
        missing_counts_reason=reasons,
        feature_sources={n: " & ".join(FEATURE_MAP[n][0]) for n in features.columns},
    )
    paired.report["gene_subsets"] = subset_report
    paired.report["feature_map"] = {n: list(FEATURE_MAP[n][0]) for n in features.columns}
    paired.report["library_tolerance"] = library_tolerance
    return paired


__all__ = [
    "FEATURE_MAP",
    "SCALA_FEATURES",
    "STEP_DURATION_S",
    "hvg_cell_ids",
    "map_features",
    "merge_gene_subsets",
    "read_scala2021",
]
