"""Build the template Patch-seq dataset (``examples/patchseq_template/``) from Scala 2021.

A small data set in the generic paired layout (docs/train-your-patchseq.md) - three files a
newcomer can copy, look at and train on in under a minute:

- ``features.csv``: one row per cell, ``cell_id`` and the 11 per-cell features under this
  project's names and units (``prepare.paired_features``; converted from Scala's columns as
  ``ephys2expr/readers/scala.py`` does);
- ``counts.csv``: raw exon read counts, genes x cells (first column ``gene``);
- ``metadata.csv``: ``cell_id``, ``total_reads`` (the library size), ``mouse`` (the animal),
  ``t_type`` and ``family`` - names chosen to differ from the defaults, so the recipe shows
  ``columns``.

Which cells and genes: the cells the ``scala2021`` source keeps (same checks and exclusions)
of the ``N_ANIMALS`` mice with the most such cells (ties by name), and ``N_GENES`` genes:
the class markers (``taxonomy.CLASS_MARKERS``) plus the most variable log2(CPM + 1) genes
among those detected in at least ``MIN_DETECTED`` of these cells. Deterministic: the same
raw files give the same bytes. Run from the project root::

    python scripts/make_patchseq_template.py   # --raw-dir data/raw --out-dir examples/...
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from ephys2expr.io import write_csv
from ephys2expr.prepare.settings import PAIRED_DEFAULT_FEATURES
from ephys2expr.readers.columns import read_table
from ephys2expr.readers.counts import check_counts, r_matrix_frame, read_counts
from ephys2expr.readers.paired_layout import indexed
from ephys2expr.readers.r import read_r
from ephys2expr.readers.scala import (
    HVG_FILE,
    META_FILE,
    META_ID,
    RDA_FILE,
    hvg_cell_ids,
    merge_gene_subsets,
    read_scala2021,
    scala_dir,
)
from ephys2expr.taxonomy import CLASS_MARKERS

N_ANIMALS = 3
N_GENES = 200
MIN_DETECTED = 0.3
OUT_DIR = Path("examples/patchseq_template")


def raw_counts(raw_dir: Path, cells: pd.Index) -> pd.DataFrame:
    """Scala's raw counts (both gene subsets merged as the scala2021 source does) of ``cells``."""
    folder = scala_dir(raw_dir)
    gdata = r_matrix_frame(read_r(folder / RDA_FILE, "gdata"), folder / RDA_FILE)
    check_counts(gdata.to_numpy(), gdata.index, gdata.columns, str(folder / RDA_FILE))
    catalogue = indexed(read_table(folder / META_FILE), META_ID, META_FILE).index
    hvg = read_counts(folder / HVG_FILE)
    hvg.columns = hvg_cell_ids(hvg.columns, catalogue, HVG_FILE)
    counts, _, _ = merge_gene_subsets({"rda": gdata, "hvg1000": hvg})
    return counts[cells]


def template_tables(raw_dir: Path) -> dict[str, pd.DataFrame]:
    """The three tables of the template: ``features``, ``counts``, ``metadata``."""
    paired = read_scala2021(raw_dir, feature_names=PAIRED_DEFAULT_FEATURES)
    meta = paired.metadata
    sizes = meta.groupby("group").size().reset_index(name="cells")
    sizes = sizes.sort_values(["cells", "group"], ascending=[False, True])
    animals = list(sizes["group"].head(N_ANIMALS))
    cells = meta.index[meta["group"].isin(animals)]
    expression = paired.expression[cells]
    detected = (expression > 0).mean(axis=1) >= MIN_DETECTED
    markers = [g for g in CLASS_MARKERS if g in expression.index]
    variable = expression[detected].var(axis=1).drop(markers, errors="ignore")
    ranked = variable.sort_values(ascending=False, kind="stable")
    chosen = set(markers) | set(ranked.index[: N_GENES - len(markers)])
    genes = [g for g in expression.index if g in chosen]  # the source's gene order
    counts = raw_counts(raw_dir, cells).loc[genes].astype("int64")
    counts.index.name = "gene"
    features = paired.features.loc[cells]
    features.index.name = "cell_id"
    metadata = pd.DataFrame(
        {
            "total_reads": meta.loc[cells, "library_size"].astype("int64"),
            "mouse": meta.loc[cells, "group"],
            "t_type": meta.loc[cells, "type"],
            "family": meta.loc[cells, "family"],
        },
        index=features.index,
    )
    return {"features": features, "counts": counts, "metadata": metadata}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", type=Path, default=Path("data/raw"))
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    for name, table in template_tables(args.raw_dir).items():
        write_csv(table, args.out_dir / f"{name}.csv")
        print(f"{args.out_dir / f'{name}.csv'}: {table.shape[0]} x {table.shape[1]}")


if __name__ == "__main__":
    main()
