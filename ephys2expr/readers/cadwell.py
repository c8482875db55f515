"""Cadwell et al. 2016 layer-1 Patch-seq cells: expression and ephys of the same cells.

Files: TPM (``cadwell_expr.rda``, stored as TPM + 1 like Tasic's ``aibsExprData``: same
minimum of 1.0, same lab package, same build, so read the same way), cell metadata
(``cadwell_meta.rda``), ephys (``IntPhysiologyFinal.mat``) joined through the ArrayExpress
sample sheet (``E-MTAB-4092.sdrf.txt``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.readers.counts import log2_stored_tpm_plus_one, r_matrix_frame
from ephys2expr.readers.r import read_r

log = logging.getLogger("ephys2expr")

# Cadwell ephys field -> project feature name (PROVENANCE.md). Units, checked against
# the Allen-derived features (ephys2expr.features.FEATURE_DESCRIPTIONS): vrest mV, inputres
# MOhm (45-180), tau ms, thresh mV, width ms (0.7-1.4, i.e. already ms like aphw = 1000 * s),
# amp mV (peak - threshold, 50-100), ahp mV (positive, below threshold). No conversion needed;
# tests/test_measured.py asserts these ranges so a file in other units fails loudly.
# The features named are ephys2expr.features.CADWELL_FEATURES (tests/test_settings.py).
CADWELL_FIELDS: dict[str, str] = {
    "vrest": "rmp",
    "inputres": "rin",
    "tau": "tau",
    "thresh": "apthr",
    "width": "aphw",
    "amp": "apamp",
    "ahp": "ahpamp",
}
# Plausible physiological ranges in the project's units (mV, MOhm, ms); a value outside
# means a unit mismatch (e.g. width in s, inputres in GOhm), not biology.
FEATURE_UNIT_RANGES: dict[str, tuple[float, float]] = {
    "rmp": (-100.0, -30.0),
    "rin": (10.0, 2000.0),
    "tau": (0.5, 100.0),
    "apthr": (-70.0, 0.0),
    "aphw": (0.1, 5.0),
    "apamp": (20.0, 150.0),
    "ahpamp": (-10.0, 50.0),
}


def read_cadwell_ephys(mat_path: str | os.PathLike) -> pd.DataFrame:
    """Cadwell 2016 ephys (``IntPhysiologyFinal.mat``), project feature names and units.

    Returns a DataFrame indexed by ``idx`` (int) with the 7 features of
    the features of :data:`CADWELL_FIELDS` (NaN where the cell lacks one) and ``class``.
    """
    import scipy.io

    mat_path = Path(mat_path)
    if not mat_path.is_file():
        raise FileNotFoundError(2, "No such file", str(mat_path))
    try:
        mat = scipy.io.loadmat(mat_path, squeeze_me=True, struct_as_record=False)
    except Exception as exc:
        raise InputError(f"{mat_path}: not a readable MATLAB file ({exc})") from None
    if "cell" not in mat:
        raise InputError(f"{mat_path}: no struct array 'cell'")
    cells = np.atleast_1d(mat["cell"])
    fields = ["idx", "class", *CADWELL_FIELDS]
    missing = [f for f in fields if f not in cells[0]._fieldnames]
    if missing:
        raise InputError(f"{mat_path}: struct 'cell' lacks field '{missing[0]}'")

    def num(v) -> float:
        a = np.atleast_1d(np.asarray(v, dtype=float))
        return float(a[0]) if a.size == 1 else np.nan  # empty [] in MATLAB means missing

    rows = []
    for c in cells:
        row = {"idx": int(num(c.idx)), "class": str(c.__dict__["class"])}
        row.update({CADWELL_FIELDS[f]: num(getattr(c, f)) for f in CADWELL_FIELDS})
        rows.append(row)
    df = pd.DataFrame(rows).set_index("idx")
    check_feature_units(df, mat_path)
    return df


def check_feature_units(df: pd.DataFrame, path) -> None:
    """Raise :class:`InputError` if a feature's median is outside its plausible unit range."""
    for feat, (lo, hi) in FEATURE_UNIT_RANGES.items():
        if feat in df.columns and df[feat].notna().any():
            med = float(df[feat].median())
            if not lo <= med <= hi:
                raise InputError(
                    f"{path}: feature '{feat}' median {med:g} outside [{lo:g}, "
                    f"{hi:g}]: wrong units?"
                )


def read_sdrf_join(sdrf_path: str | os.PathLike) -> pd.Series:
    """ArrayExpress sheet: ``Source Name`` ``Int_<idx>`` -> ``Comment[ENA_RUN]`` (ERR id).

    Returns a Series indexed by the integer ``idx`` with the ERR run id as value.
    """
    sdrf_path = Path(sdrf_path)
    if not sdrf_path.is_file():
        raise FileNotFoundError(2, "No such file", str(sdrf_path))
    sheet = pd.read_csv(sdrf_path, sep="\t", dtype=str)
    for col in ("Source Name", "Comment[ENA_RUN]"):
        if col not in sheet.columns:
            raise InputError(f"{sdrf_path}: missing column '{col}'")
    m = sheet["Source Name"].str.extract(r"^Int_(\d+)$")[0]
    if m.isna().any():
        bad = sheet.loc[m.isna(), "Source Name"].iloc[0]
        raise InputError(f"{sdrf_path}: 'Source Name' value '{bad}' is not Int_<idx>")
    out = pd.Series(
        sheet["Comment[ENA_RUN]"].to_numpy(), index=m.astype(int).to_numpy(), name="run"
    )
    out.index.name = "idx"
    return out[~out.index.duplicated()]


@dataclass
class PatchSeqSet:
    """Paired Patch-seq cells: measured expression and ephys of the same cells.

    Attributes
    ----------
    expr : pandas.DataFrame
        Cells (ERR run id) x genes, log2(TPM + 1).
    features : pandas.DataFrame
        Same cells, the Cadwell features in project names/units (NaN where missing).
    meta : pandas.DataFrame
        ``major_type`` (eNGC, SBC, ...), ``idx`` (the ephys index).
    """

    expr: pd.DataFrame
    features: pd.DataFrame
    meta: pd.DataFrame


def read_cadwell(
    expr_path: str | os.PathLike,
    meta_path: str | os.PathLike,
    ephys_path: str | os.PathLike,
    sdrf_path: str | os.PathLike,
) -> PatchSeqSet:
    """Read Cadwell 2016 and keep the cells that have both expression and ephys."""
    data = r_matrix_frame(read_r(expr_path, "cadwell_expr"), expr_path)
    meta = read_r(meta_path, "cadwell_meta")
    if "sample_id" not in meta.columns or "major_type" not in meta.columns:
        raise InputError(f"{meta_path}: needs columns 'sample_id' and 'major_type'")
    meta = meta.assign(sample_id=meta["sample_id"].astype(str)).set_index("sample_id")
    ephys = read_cadwell_ephys(ephys_path)
    runs = read_sdrf_join(sdrf_path)
    unknown = ephys.index.difference(runs.index)
    if len(unknown):
        raise InputError(
            f"{sdrf_path}: no row 'Int_{unknown[0]}' for ephys cell idx "
            f"{unknown[0]} of {ephys_path}"
        )
    ephys = ephys.assign(run=runs.loc[ephys.index].to_numpy())
    paired = ephys[ephys["run"].isin(data.columns)]
    log.info(
        "Cadwell 2016: %d cells with expression, %d with ephys, %d paired",
        data.shape[1],
        len(ephys),
        len(paired),
    )
    expr = log2_stored_tpm_plus_one(data[paired["run"].tolist()], expr_path).T
    expr.index.name = "cell_id"
    feats = paired.set_index("run")[list(CADWELL_FIELDS.values())]
    feats.index.name = "cell_id"
    m = pd.DataFrame(
        {
            "major_type": meta["major_type"].astype(str).reindex(expr.index).fillna("unknown"),
            "idx": paired.index.to_numpy(),
            "ephys_class": paired["class"].to_numpy(),
        },
        index=expr.index,
    )
    return PatchSeqSet(expr=expr.astype(float), features=feats.astype(float), meta=m)


__all__ = [
    "CADWELL_FIELDS",
    "FEATURE_UNIT_RANGES",
    "PatchSeqSet",
    "check_feature_units",
    "read_cadwell",
    "read_cadwell_ephys",
    "read_sdrf_join",
]
