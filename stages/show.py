"""Show one cell of a predictions file: identity with probabilities, top genes with their
intervals, out-of-distribution score.

Not a DVC stage: a reading aid, e.g.
``python -m stages.show --predictions data/predictions/scala2021/aibs_v6.h5ad --cell 557261437``.
Reads only that cell (the h5ad lazily). How to read every cell and gene in code:
docs/predict-your-cells.md ("Reading predictions").
"""

from __future__ import annotations

from pathlib import Path

import typer

from ephys2expr.cli import friendly_errors, run_stage, stage_app
from ephys2expr.predict.outputs.read import describe_cell

app = stage_app(__doc__)


@app.command()
@friendly_errors
def main(
    predictions: Path = typer.Option(
        ..., "--predictions", help="a .h5ad or .parquet predict wrote"
    ),
    cell: str = typer.Option(..., "--cell", help="the cell's id (obs name)"),
    top: int = typer.Option(15, "--top", min=1, help="how many genes (highest predictions)"),
) -> None:
    """Print one cell's identity, top genes with intervals and ood score."""
    if not predictions.is_file():
        raise FileNotFoundError(2, "No such file", str(predictions))
    typer.echo(describe_cell(predictions, cell, top))


if __name__ == "__main__":
    run_stage(app)
