"""The cell-type taxonomy and the marker genes: one list per concept, used everywhere.

* :data:`MARKER_GENES`: the marker genes every stage shows (training plots, prediction
  plots, validation); :data:`CLASS_MARKERS` is the subset with a known Exc/Inh or
  interneuron-subclass identity, shown in the training plots.
* :func:`type_group`, :func:`cre_group`, :func:`exc_inh_truth`: coarse groups (Pvalb, Sst,
  Vip, Ndnf, Exc L2/3 ... L6) of transcriptomic types and of Allen cells (cre line, layer,
  dendrite type), the unit of the validation's type agreement.
"""

from __future__ import annotations

import re

# Interneuron subclasses and the Exc/Inh pan-markers (Gad1 inhibitory, Slc17a7 excitatory).
CLASS_MARKERS: list[str] = ["Pvalb", "Sst", "Vip", "Gad1", "Slc17a7"]
# All marker genes shown by the plots, as mouse symbols (matched case-sensitively): the
# class markers plus Lamp5/Ndnf (layer-1 interneurons) and Rorb/Fezf2 (layer 4 / layer 5).
MARKER_GENES: list[str] = [
    "Pvalb",
    "Sst",
    "Vip",
    "Lamp5",
    "Ndnf",
    "Gad1",
    "Slc17a7",
    "Rorb",
    "Fezf2",
]


def type_group(label: str) -> str:
    """Coarse group of a transcriptomic type or cre line, the unit of type agreement.

    Groups: ``Pvalb``, ``Sst``, ``Vip``, ``Ndnf`` (Ndnf/Lamp5, incl. Htr3a-only lines, whose
    non-Vip cells are mostly Ndnf/Lamp5-like), ``Exc L2/3``, ``Exc L4``, ``Exc L5``, ``Exc L6``,
    ``Non-neuronal`` and ``other``.

    Parameters
    ----------
    label : str
        A Tasic 2016 type (``Vip Chat``, ``L5a Batf3``) or an Allen cre line name
        (``Pvalb-IRES-Cre``); for cre lines of excitatory neurons the layer is not in the name,
        see :func:`cre_group`.
    """
    s = str(label)
    low = s.lower()
    for g in ("Pvalb", "Sst", "Vip", "Ndnf"):
        if low.startswith(g.lower()):
            return g
    if low.startswith(("lamp5", "htr3a", "sncg", "igtp", "smad3")):
        return "Ndnf" if low.startswith(("lamp5", "htr3a")) else "other"
    m = re.match(r"^l(\d)", low)
    if m:
        layer = m.group(1)
        return {"2": "Exc L2/3", "3": "Exc L2/3", "4": "Exc L4", "5": "Exc L5", "6": "Exc L6"}.get(
            layer, "other"
        )
    if low.startswith(("astro", "oligo", "opc", "micro", "endo", "smc")):
        return "Non-neuronal"
    return "other"


# Cre lines of the Allen Cell Types ephys data -> group. Interneuron lines by their marker;
# Chat-IRES-Cre labels Vip/Chat cells and Nkx2-1 mostly Pvalb-family chandelier cells.
_INH_CRE_PREFIX = {
    "pvalb": "Pvalb",
    "sst": "Sst",
    "vip": "Vip",
    "ndnf": "Ndnf",
    "htr3a": "Ndnf",
    "chat": "Vip",
    "nkx2-1": "Pvalb",
    "chrna2": "Sst",  # aspiny Chrna2 cells are L5 Martinotti (Sst) cells; spiny ones are Exc
}
_INH_ONLY_OTHER = ("gad2", "slc32a1", "nos1", "dlx", "penk")


def cre_group(cre_line: str, layer: str | None, dendrite_type: str | None = None) -> str:
    """Group (as in :func:`type_group`) of an Allen cell from its cre line, layer and dendrites.

    Spiny cells are excitatory and map to ``Exc L<layer>`` whatever the line (Chrna2 and a
    few other lines label both classes); other cells of an interneuron line map to the line's
    marker group (Htr3a -> ``Ndnf``, see :func:`type_group`); pan-GABAergic lines (Gad2...)
    give ``other``; excitatory lines map to ``Exc L<layer>``.
    """
    low = str(cre_line).lower()
    spiny = str(dendrite_type).lower() == "spiny"
    if not spiny:
        for prefix, g in _INH_CRE_PREFIX.items():
            if low.startswith(prefix):
                return g
        if low.startswith(_INH_ONLY_OTHER) or str(dendrite_type).lower() == "aspiny":
            return "other"
    lay = str(layer or "").lower().replace("layer", "").strip()
    m = re.match(r"^(\d)", lay)
    if not m:
        return "other"
    return {"1": "other", "2": "Exc L2/3", "3": "Exc L2/3", "4": "Exc L4", "5": "Exc L5"}.get(
        m.group(1), "Exc L6"
    )


_INH_LINES = (*_INH_CRE_PREFIX, *_INH_ONLY_OTHER)


def exc_inh_truth(cre_line: str, dendrite_type: str | None) -> str:
    """Exc/Inh of an Allen cell: spiny -> Exc, aspiny -> Inh; otherwise from the cre line.

    Sparsely spiny cells (mostly Vip/Chat interneurons) and unknown dendrites fall back to
    the cre line; an excitatory line with non-spiny dendrites gives ``""`` (not scored).
    """
    d = str(dendrite_type).lower()
    if d == "spiny":
        return "Exc"
    if d == "aspiny":
        return "Inh"
    low = str(cre_line).lower()
    if low.startswith(_INH_LINES):
        return "Inh"
    return ""
