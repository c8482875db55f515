"""Stage prepare: raw data -> training tables, per-cell prediction tables, metrics."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import typer

from ephys2expr import paths
from ephys2expr.cli import friendly_errors
from ephys2expr.features import with_derived
from ephys2expr.genes import filter_genes
from ephys2expr.io import write_json, write_parquet
from ephys2expr.prepare import (
    CELL_INPUTS,
    backfill_from,
    cell_summary,
    gene_counts,
    load_training_set,
    parse_feature_list,
    select_features,
    summarise_types,
)
from ephys2expr.readers import read_allen_cells

app = typer.Typer(add_completion=False, help=__doc__)
log = logging.getLogger("ephys2expr.prepare")


@app.command()
@friendly_errors
def main(
    training_source: str = typer.Option("rds", help="rds | online_table3"),
    online_table3: Path = typer.Option(paths.ONLINE_TABLE3, help="Online Table 3 layout CSV"),
    features: str = typer.Option(..., help="comma-separated feature names, in order"),
    min_max_log2: float = typer.Option(0.0, help="keep genes whose max type mean >= this"),
    top_variable: int = typer.Option(0, help="keep the N most variable genes (0 = all)"),
    raw_dir: Path = typer.Option(paths.RAW, help="folder holding the raw data tree"),
    out_dir: Path = typer.Option(paths.PREPARED, help="output folder"),
    metrics: Path = typer.Option(paths.METRICS / "prepare.json", help="metrics JSON"),
) -> None:
    """Write tidy Parquet inputs for train and predict, and metrics/prepare.json."""
    start = time.perf_counter()
    feature_list = parse_feature_list(features)
    where = f"params.yaml prepare.features ({training_source} table)"

    log.info("reading training table (%s)", training_source)
    training = load_training_set(training_source, online_table3, raw_dir)
    train_features = select_features(training, feature_list, where)
    targets, gene_report = filter_genes(
        training.targets,
        min_max_log2=min_max_log2,
        top_variable=top_variable,
        where=f"{training_source} training table",
    )
    log.info(
        "training: %d types x %d features, %d of %d genes kept",
        len(train_features),
        len(feature_list),
        len(targets),
        len(training.targets),
    )

    log.info("reading Allen per-cell tables")
    cells, cell_reports = {}, {}
    for name, (path, absent) in CELL_INPUTS.items():
        cells[name], cell_reports[name] = read_allen_cells(
            paths.in_raw_dir(raw_dir, path), absent=absent
        )
    for name, (_path, absent) in CELL_INPUTS.items():
        if absent:
            fill = list(with_derived(absent))
            cell_reports[name]["cells_backfilled_from_aibs_v6"] = backfill_from(
                cells[name], cells["aibs_v6"], fill
            )
            cell_reports[name]["absent_features"] = fill

    # Write everything only after every input has been read and checked.
    write_parquet(train_features, out_dir / "train_features.parquet")
    write_parquet(targets, out_dir / "train_targets.parquet")
    write_parquet(training.types, out_dir / "train_types.parquet")
    for name, table in cells.items():
        write_parquet(table, out_dir / f"cells_{name}.parquet")

    summary = {
        "training_source": training_source,
        **summarise_types(training.types),
        "features": len(feature_list),
        **gene_counts(gene_report),
        "prediction_inputs": {
            name: {**cell_reports[name], **cell_summary(table, feature_list)}
            for name, table in cells.items()
        },
        "seconds": round(time.perf_counter() - start, 1),
    }
    if training.restoration is not None:
        summary["symbols_restored"] = training.restoration.n_restored
        summary["symbols_unchanged"] = training.restoration.n_unchanged
        summary["symbols_unresolved"] = len(training.restoration.unresolved)
    summary.update({k: v for k, v in training.notes.items() if isinstance(v, int | float)})
    write_json(summary, metrics)
    log.info("done in %.1f s", summary["seconds"])


if __name__ == "__main__":
    app()
