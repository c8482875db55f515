"""Stage predict: apply the model store to per-cell feature tables (Allen or your own).

Two ways to name the inputs:

* ``--inputs aibs_v6,aibs_v10`` (the DVC stage): ``<prepared-dir>/cells_<name>.parquet``
  -> ``<output-dir>/<name>.parquet`` (+ ``.h5ad``), metrics and plots for all of them.
* ``--input FILE --output FILE.parquet`` (outside DVC): any CSV/TSV/Parquet table with the
  model's feature columns and an id column (``--id-column``, default ``cell_id``).

Every input is read and checked before anything is written.
"""

from __future__ import annotations

import logging
import time
from enum import StrEnum
from pathlib import Path

import typer

from ephys2expr import paths
from ephys2expr.cli import friendly_errors
from ephys2expr.errors import InputError
from ephys2expr.executor import ExecutorSettings, open_executor
from ephys2expr.io import save_figure, write_json, write_parquet
from ephys2expr.model_store import load_model_store
from ephys2expr.predict import (
    CellScreen,
    extrapolation_by_feature,
    load_cells,
    marker_predictions,
    select_genes,
    write_predictions,
)

app = typer.Typer(add_completion=False, help=__doc__)
log = logging.getLogger("ephys2expr.predict")


class Missing(StrEnum):
    drop = "drop"
    impute = "impute"


class Genes(StrEnum):
    all = "all"
    predictable = "predictable"


def parse_bool(text: str, option: str) -> bool:
    """``true``/``false`` (as DVC writes YAML booleans into commands), yes/no, 1/0."""
    value = str(text).strip().lower()
    if value in ("true", "yes", "1"):
        return True
    if value in ("false", "no", "0"):
        return False
    raise InputError(f"{option} {text!r}: expected true or false")


@app.command()
@friendly_errors
def main(
    inputs: str = typer.Option("", help="comma-separated prepared input names (DVC mode)"),
    input: list[Path] = typer.Option(  # noqa: A002 - the documented option name
        [], "--input", help="a feature table (CSV/TSV/Parquet); repeat for several"
    ),
    output: list[Path] = typer.Option(
        [], "--output", help="predictions Parquet for each --input, in the same order"
    ),
    model: Path = typer.Option(paths.MODEL, help="model store directory"),
    id_column: str = typer.Option("cell_id", help="id column of --input tables"),
    species: str = typer.Option(None, help="species for tables without a species column"),
    prepared_dir: Path = typer.Option(paths.PREPARED, help="where cells_<name>.parquet live"),
    output_dir: Path = typer.Option(paths.PREDICTIONS, help="where <name>.parquet goes"),
    missing: Missing = typer.Option(Missing.drop, help="drop | impute (training means)"),
    extrapolation_tolerance: float = typer.Option(
        0.1, help="fraction of the training range allowed beyond min/max"
    ),
    genes: Genes = typer.Option(
        Genes.all, help="all | predictable (only genes whose CV r2 beats every baseline)"
    ),
    write_h5ad: str = typer.Option("false", help="true | false: also write <output>.h5ad"),
    chunk_cells: int = typer.Option(1000, help="cells per chunk (bounds memory)"),
    executor: str = typer.Option("inprocess", help="inprocess | local | address (Dask)"),
    n_workers: int = typer.Option(2, help="worker processes for --executor local"),
    threads_per_worker: int = typer.Option(1, help="threads per Dask worker (numba/BLAS)"),
    address: str = typer.Option("", help="Dask scheduler address for --executor address"),
    metrics: Path = typer.Option(None, help="metrics JSON (optional)"),
    plots_dir: Path = typer.Option(None, help="folder for marker plots (optional)"),
) -> None:
    """Predict log2 expression of every gene for every cell; write Parquet (+ h5ad)."""
    start = time.perf_counter()
    h5ad = parse_bool(write_h5ad, "--write-h5ad")
    only_predictable = genes is Genes.predictable
    jobs = _jobs(inputs, input, output, prepared_dir, output_dir)
    if chunk_cells < 1:
        raise InputError(f"--chunk-cells {chunk_cells}: expected >= 1")
    run_on = ExecutorSettings(
        kind=executor, n_workers=n_workers, threads_per_worker=threads_per_worker,
        address=address,
    )  # fmt: skip

    store = load_model_store(model)
    screen = CellScreen(missing=missing.value, tolerance=extrapolation_tolerance).fit(store)
    gene_idx = select_genes(store, only_predictable, where=str(model))
    log.info(
        "model store %s: %d genes x %d features; predicting %d genes",
        model,
        len(store.genes),
        len(store.features),
        len(gene_idx),
    )
    if len(gene_idx) == 0:
        raise InputError(f"{model}: no gene passes only_predictable; nothing to predict")

    # Read and check every input before writing anything.
    items = [
        load_cells(src, store, screen, name=name, id_column=id_column, species=species)
        for name, src, _dst in jobs
    ]
    for item in items:
        if not item.screen.kept.any():
            raise InputError(
                f"{item.path}: no cell left to predict (all {len(item.meta)} have "
                f"a missing feature; try --missing impute)"
            )

    summary: dict = {
        "genes_in_model": len(store.genes),
        "genes_predicted": len(gene_idx),
        "missing_policy": missing.value,
        "extrapolation_tolerance": extrapolation_tolerance,
        "only_predictable": only_predictable,
    }
    genes_table = store.genes.iloc[gene_idx]
    r2 = genes_table["cv_r2"].to_dict() if "cv_r2" in genes_table.columns else None
    with open_executor(run_on) as ex:
        for item, (_name, _src, dst) in zip(items, jobs, strict=True):
            t0 = time.perf_counter()
            meta = item.kept_meta
            file_meta = {
                "input": item.name,
                "features": store.features,
                "missing_policy": missing.value,
                "extrapolation_tolerance": extrapolation_tolerance,
                "only_predictable": only_predictable,
                "dtype": "float32",
                "model_provenance": store.provenance,
            }
            written = write_predictions(
                dst,
                store,
                item.screen.X,
                meta,
                gene_idx,
                chunk_cells=chunk_cells,
                file_metadata=file_meta,
                h5ad_path=dst.with_suffix(".h5ad") if h5ad else None,
                executor=ex,
            )
            write_parquet(genes_table, _genes_path(dst))
            seconds = time.perf_counter() - t0
            log.info(
                "%s: wrote %s (%d cells x %d genes) in %.1f s",
                item.name,
                dst,
                len(meta),
                len(gene_idx),
                seconds,
            )
            s = item.summary()
            s.update(written)
            s["extrapolated_by_feature"] = extrapolation_by_feature(
                item.screen.flags, item.screen.kept, store.features
            )
            summary[item.name] = s
            if plots_dir is not None:
                _plots(item, store, gene_idx, r2, plots_dir, extrapolation_tolerance)

    if metrics is not None:
        write_json(summary, metrics)
    log.info("done in %.1f s", time.perf_counter() - start)


def _jobs(
    inputs: str, input_paths: list[Path], outputs: list[Path], prepared_dir: Path, output_dir: Path
) -> list[tuple[str, Path, Path]]:
    names = [n.strip() for n in inputs.split(",") if n.strip()]
    if names and input_paths:
        raise InputError("use either --inputs NAMES or --input FILE --output FILE, not both")
    if names:
        if len(set(names)) != len(names):
            raise InputError(f"--inputs {inputs}: a name is repeated")
        return [
            (n, prepared_dir / f"cells_{n}.parquet", output_dir / f"{n}.parquet") for n in names
        ]
    if not input_paths:
        raise InputError("nothing to predict: give --inputs NAMES or --input FILE --output FILE")
    if len(outputs) != len(input_paths):
        raise InputError(
            f"{len(input_paths)} --input but {len(outputs)} --output: give one --output per --input"
        )
    for dst in outputs:
        if dst.suffix.lower() != ".parquet":
            raise InputError(f"--output {dst}: must end in .parquet")
    stems = [p.stem for p in input_paths]
    names = stems if len(set(stems)) == len(stems) else [f"input{i + 1}" for i in range(len(stems))]
    return list(zip(names, input_paths, outputs, strict=True))


def _genes_path(dst: Path) -> Path:
    """Per-gene table beside the predictions: ``x.parquet`` -> ``x.genes.parquet``."""
    return dst.with_name(dst.stem + ".genes.parquet")


def _plots(item, store, gene_idx, r2, plots_dir: Path, tolerance: float) -> None:
    from ephys2expr.predict_plots import extrapolation_bars, marker_boxplots, marker_heatmap

    meta = item.kept_meta
    markers = marker_predictions(store, item.screen.X, gene_idx, meta.index)
    if markers.shape[1]:
        fig = marker_heatmap(
            markers,
            meta,
            r2=r2,
            title=f"{item.name}: predicted marker expression by Cre line "
            f"({len(meta)} cells, mouse model)",
        )
        save_figure(fig, plots_dir / f"{item.name}_markers_by_cre.png")
        fig = marker_boxplots(
            markers,
            meta,
            title=f"{item.name}: predicted marker expression by dendrite type",
            r2=r2,
        )
        save_figure(fig, plots_dir / f"{item.name}_markers_by_dendrite.png")
    else:
        log.warning(
            "%s: none of the marker genes is among the predicted genes; no marker plots", item.name
        )
    fig = extrapolation_bars(
        item.screen.flags.loc[item.screen.kept],
        meta,
        store.features,
        title=f"{item.name}: features outside the training range "
        f"(beyond min/max by more than {tolerance:g} x range)",
    )
    save_figure(fig, plots_dir / f"{item.name}_extrapolation.png")


if __name__ == "__main__":
    app()
