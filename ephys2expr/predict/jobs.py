"""The tables a predict run reads and the files it writes: one :class:`Job` each."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from ephys2expr.cell_inputs import CellSettings
from ephys2expr.errors import InputError
from ephys2expr.predict.outputs.write import genes_path
from ephys2expr.predict.settings import PredictSettings

# What --output may end in: the primary file's format.
OUTPUT_SUFFIXES = (".h5ad", ".parquet")


class Job(NamedTuple):
    """One table to predict: its name (logs, metrics, plots), where it is, where it goes.

    ``output`` names the files: ``formats`` (``.h5ad``, ``.parquet``) are written as
    ``output`` with that suffix, and the genes table as ``<stem>.genes.parquet``.
    """

    name: str
    source: Path
    output: Path
    formats: tuple[str, ...] = (".parquet",)

    def files(self) -> dict[str, Path]:
        """``{suffix: path}`` of the predictions files, and ``"genes"``: the genes table."""
        out = {f: self.output.with_suffix(f) for f in self.formats}
        return {**out, "genes": genes_path(self.output)}


def prediction_jobs(
    settings: PredictSettings,
    prepared_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    inputs: list[Path] | None = None,
    outputs: list[Path] | None = None,
    cells: CellSettings | None = None,
) -> list[Job]:
    """The tables to predict: user files (``--input``/``--output``) or ``cells.inputs``.

    Without ``inputs`` each name of ``cells.inputs`` (the ``cells:`` section) maps
    ``<prepared_dir>/cells_<name>.parquet`` to ``<out_dir>/<name>.h5ad`` (``write_h5ad``)
    and/or ``<out_dir>/<name>.parquet`` (``write_parquet``). With them, each ``inputs[i]``
    goes to ``outputs[i]`` (a ``.h5ad`` or ``.parquet`` path, always written; the other
    format beside it if its ``write_*`` setting is on) and is named by its file stem
    (``input1``, ``input2``, ... if two stems are the same).
    """
    inputs, outputs = list(inputs or []), list(outputs or [])
    cells = cells or CellSettings()
    if not inputs:
        if outputs:
            raise InputError(f"{len(outputs)} --output but no --input: give one per --output")
        if not cells.inputs:
            raise InputError(
                "nothing to predict: set params.yaml cells.inputs or give "
                "--input FILE --output FILE"
            )
        formats = tuple(settings.formats())
        if not formats:
            raise InputError(
                "params.yaml predict.write_h5ad and predict.write_parquet are both false: "
                "nothing would be written"
            )
        prepared_dir, out_dir = Path(prepared_dir), Path(out_dir)
        return [
            Job(n, prepared_dir / f"cells_{n}.parquet", out_dir / f"{n}{formats[0]}", formats)
            for n in cells.inputs
        ]
    if len(outputs) != len(inputs):
        raise InputError(
            f"{len(inputs)} --input but {len(outputs)} --output: give one --output per --input"
        )
    for dst in outputs:
        if Path(dst).suffix.lower() not in OUTPUT_SUFFIXES:
            raise InputError(f"--output {dst}: must end in .parquet or .h5ad")
    stems = [Path(p).stem for p in inputs]
    names = stems if len(set(stems)) == len(stems) else [f"input{i + 1}" for i in range(len(stems))]
    return [
        Job(n, Path(s), Path(d), tuple(settings.formats(Path(d).suffix.lower())))
        for n, s, d in zip(names, inputs, outputs, strict=True)
    ]


__all__ = ["OUTPUT_SUFFIXES", "Job", "prediction_jobs"]
