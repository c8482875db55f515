"""The 15 ephys features derived from the columns of an Allen Cell Types per-cell table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.features import ALL_FEATURES
from ephys2expr.readers.columns import numeric_column

# Allen columns each derived feature needs (the Pavlidis lab's derivation, which their
# aibs_ephys.rda reproduces to 1e-13).
ALLEN_COLUMNS: dict[str, list[str]] = {
    "rmp": ["vrest"],
    "rin": ["ri"],
    "apthr": ["threshold_v_long_square"],
    "apamp": ["peak_v_long_square", "threshold_v_long_square"],
    "ahpamp": ["threshold_v_long_square", "fast_trough_v_long_square"],
    "aphw": ["rheo_first_spike_hw"],
    "tau": ["tau"],
    "rheo": ["threshold_i_long_square"],
    "maxfreq": ["max_rate_long_square"],
    "cap": ["tau", "ri"],
    "adratio": ["max_rate_first_mean_adratio"],
    "sag": ["sag"],
    "f_i_curve_slope": ["f_i_curve_slope"],
    "avg_isi": ["avg_isi"],
    "latency": ["latency"],
}


def with_derived(absent) -> tuple[str, ...]:
    """``absent`` plus the features derived from them (cap = 1000 * tau / rin needs tau)."""
    absent = tuple(absent)
    return absent + (("cap",) if "tau" in absent and "cap" not in absent else ())


def derive_features(
    table: pd.DataFrame,
    where: str,
    absent: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Derive the 15 features from an Allen Cell Types per-cell table.

    Parameters
    ----------
    table : DataFrame
        Raw Allen columns (``vrest``, ``ri``, ``threshold_v_long_square``, ...).
    where : str
        File name for error messages.
    absent : tuple of str
        Features known to be absent from this table (their columns are not required);
        they come out as NaN.

    Returns
    -------
    DataFrame with columns :data:`ALL_FEATURES` (float64), same index as ``table``.
    """
    absent = with_derived(absent)
    needed = sorted({c for f in ALL_FEATURES if f not in absent for c in ALLEN_COLUMNS[f]})
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise InputError(f"{where}: missing feature column(s) {missing}")
    col = {c: numeric_column(table, c, where) for c in needed}
    nan = pd.Series(np.nan, index=table.index)
    get = col.get
    out = {
        "rin": get("ri", nan),
        "rmp": get("vrest", nan),
        "apthr": get("threshold_v_long_square", nan),
        "apamp": get("peak_v_long_square", nan) - get("threshold_v_long_square", nan),
        "aphw": 1000 * get("rheo_first_spike_hw", nan),
        "tau": get("tau", nan),
        "ahpamp": get("threshold_v_long_square", nan) - get("fast_trough_v_long_square", nan),
        "rheo": get("threshold_i_long_square", nan),
        "maxfreq": get("max_rate_long_square", nan),
        "cap": 1000 * get("tau", nan) / get("ri", nan),
        "adratio": get("max_rate_first_mean_adratio", nan),
        "sag": get("sag", nan),
        "f_i_curve_slope": get("f_i_curve_slope", nan),
        "avg_isi": get("avg_isi", nan),
        "latency": get("latency", nan),
    }
    feats = pd.DataFrame(out, index=table.index)[ALL_FEATURES].astype(float)
    for f in absent:
        feats[f] = np.nan
    return feats
