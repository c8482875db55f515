"""The foreign sets of the transfer check: every labelled set of another lab, read as
features (project names and units) with each cell's truth, expected families and known class.

The sets (validation only: they never reach a training table or a store):

* Allen v6 / v10 (another lab, the Allen pipeline): Exc/Inh from dendrite type and Cre line,
  family expected from an interneuron Cre line (:data:`ephys2expr.identity.align.
  CRE_FAMILIES`); known class = the cell's Exc/Inh; and their aspiny cells as a batch of
  their own, known class Inh (:func:`aspiny_batch`);
* Cadwell 2016: layer-1 interneurons (all GABAergic), 7 features;
* human L1 (Chartrand et al. 2023), three labs, all GABAergic; ``homology_type`` LAMP5 ->
  Lamp5, VIP -> Vip/Sncg where known;
* Berg et al. 2021 L2/3, all excitatory (IT), human and mouse.

They are scored by :mod:`ephys2expr.validate.transfer.scores`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ephys2expr import paths
from ephys2expr.identity.align import CRE_FAMILIES
from ephys2expr.readers.ipfx import ipfx_cells
from ephys2expr.taxonomy import cre_group, exc_inh_truth

L1_DIR = Path("crosslab") / "human_l1"
BERG_DIR = Path("crosslab") / "berg2021"
L1_LABS = {"aibs": "l1_allen", "mansvelder": "l1_mansvelder", "tamas": "l1_tamas"}
# the families expected of a Pvalb, Sst or Vip line (issue #30's "Pvalb/Sst/Vip-line family
# agreement"; the Htr3a/Ndnf lines, Lamp5 or Vip or Sncg, are scored in family_agreement only)
PSV_LINES = (CRE_FAMILIES["Pvalb"], CRE_FAMILIES["Sst"], CRE_FAMILIES["Vip"])
HOMOLOGY = {"LAMP5": ("Lamp5",), "VIP": ("Vip", "Sncg")}


@dataclass
class TransferSet:
    """One foreign set: features (project names and units), per cell the truth Exc/Inh
    (``""`` = unknown), the expected families (empty tuple = unknown) and the known class
    a user would give; ``cre``: the expected families come from the cells' Cre lines (then
    ``family_agreement_psv`` scores the Pvalb, Sst and Vip lines)."""

    cells: pd.DataFrame
    truth: np.ndarray
    expected: list
    known: np.ndarray
    cre: bool = False


def _allen(prepared_dir: Path, name: str) -> TransferSet:
    c = pd.read_parquet(prepared_dir / f"cells_{name}.parquet")
    truth = np.array(
        [exc_inh_truth(a, d) for a, d in zip(c["cre_line"], c["dendrite_type"], strict=True)]
    )
    groups = [
        cre_group(a, la, d)
        for a, la, d in zip(c["cre_line"], c["layer"], c["dendrite_type"], strict=True)
    ]
    expected = [
        CRE_FAMILIES.get(g, ()) if t == "Inh" else () for g, t in zip(groups, truth, strict=True)
    ]
    return TransferSet(c, truth, expected, truth.copy(), cre=True)


def aspiny_batch(s: TransferSet) -> TransferSet:
    """The aspiny cells of an Allen set as their own batch (issue #30's "Allen aspiny cells
    with known class Inh"), known class Inh."""
    keep = s.cells["dendrite_type"].astype(str).str.lower().eq("aspiny").to_numpy()
    n = int(keep.sum())
    expected = [e for e, k in zip(s.expected, keep, strict=True) if k]
    return TransferSet(s.cells[keep], s.truth[keep], expected, np.full(n, "Inh"), cre=True)


def _one_class(cells: pd.DataFrame, cls: str, expected=None) -> TransferSet:
    n = len(cells)
    exp = expected if expected is not None else [()] * n
    return TransferSet(cells, np.full(n, cls), exp, np.full(n, cls))


def transfer_sets(raw_dir: Path, prepared_dir: Path, cadwell=None) -> dict[str, TransferSet]:
    """Every labelled foreign set (``cadwell``: its :class:`~ephys2expr.readers.cadwell.
    PatchSeqSet`, already read by validate; ``prepared_dir``: the per-cell source's)."""
    sets = {}
    for v in ("v6", "v10"):
        sets[f"allen_{v}"] = whole = _allen(prepared_dir, f"aibs_{v}")
        sets[f"allen_{v}_aspiny"] = aspiny_batch(whole)
    if cadwell is not None:
        pyr = cadwell.meta["major_type"].str.lower().str.contains("pyr").to_numpy()
        s = _one_class(cadwell.features, "Inh")
        s.truth = np.where(pyr, "Exc", "Inh")
        s.known = s.truth.copy()
        sets["cadwell"] = s
    meta = pd.read_csv(
        paths.in_raw_dir(raw_dir, paths.RAW / L1_DIR / "human_l1_dataset_2023_02_06.csv")
    )
    homology = {}
    for col in ("spec_id", "sample_id"):
        homology |= dict(zip(meta[col].astype(str), meta["homology_type"].astype(str), strict=True))
    for lab, name in L1_LABS.items():
        path = paths.in_raw_dir(raw_dir, paths.RAW / L1_DIR / f"{lab}_features_E.csv")
        cells, _ = ipfx_cells(pd.read_csv(path), str(path))
        cells = cells.set_index("cell_id")
        exp = [HOMOLOGY.get(homology.get(str(i), ""), ()) for i in cells.index]
        sets[name] = _one_class(cells, "Inh", exp)
    path = paths.in_raw_dir(raw_dir, paths.RAW / BERG_DIR / "human_mouse_ephys_all_0127.csv")
    berg, _ = ipfx_cells(pd.read_csv(path), str(path))
    berg = berg.set_index("cell_id")
    human_path = paths.in_raw_dir(
        raw_dir, paths.RAW / BERG_DIR / "human_IVSCC_excitatory_L23_consolidated_0131.csv"
    )
    human = set(pd.read_csv(human_path)["SpecimenID"].astype(str))
    is_human = berg.index.astype(str).isin(sorted(human))
    for sp, rows in (("human", is_human), ("mouse", ~is_human)):
        part = berg[rows]
        sets[f"berg_{sp}"] = _one_class(part, "Exc", [("IT",)] * len(part))
    return sets


__all__ = ["PSV_LINES", "TransferSet", "aspiny_batch", "transfer_sets"]
