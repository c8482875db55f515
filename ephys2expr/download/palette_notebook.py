"""Rebuild ``driver_lines_palette.csv`` from the notebook that printed it."""

from __future__ import annotations

import ast
import csv
import io
import json
import re

from ephys2expr.download.sources import DownloadError

_HEX = re.compile(r"#[0-9A-Fa-f]{6}")

PALETTE_HEADER = ("driver_lines_label", "driver_lines_color")


def palette_from_notebook(notebook: bytes, where: str) -> bytes:
    """Rebuild ``driver_lines_palette.csv`` from ``Validating Predictions.ipynb``.

    The notebook builds a dict ``cre_line_palette`` (Cre line -> hex colour) and shows
    it as the last expression of a cell; IPython prints it as a Python literal in
    insertion order. That printed dict, written as a two-column CSV in the same
    order, is the file we track (the caller checks md5 and size).

    Parameters
    ----------
    notebook : bytes
        The ``.ipynb`` file (nbformat 4 JSON).
    where : str
        Name of the notebook for error messages.

    Raises
    ------
    DownloadError
        If the notebook has no such printed dict, or it is not label -> ``#RRGGBB``.
    """
    try:
        cells = json.loads(notebook)["cells"]
    except (ValueError, KeyError, TypeError):
        raise DownloadError(f"{where}: not a Jupyter notebook (JSON with 'cells')") from None
    for cell in cells:
        source = "".join(cell.get("source", []))
        if cell.get("cell_type") != "code" or not source.rstrip().endswith("cre_line_palette"):
            continue
        for out in cell.get("outputs", []):
            text = (
                out.get("data", {}).get("text/plain")
                if out.get("output_type") == "execute_result"
                else None
            )
            if text is None:
                continue
            try:
                palette = ast.literal_eval("".join(text))
            except (ValueError, SyntaxError):
                raise DownloadError(f"{where}: printed cre_line_palette is not a literal") from None
            ok = (
                isinstance(palette, dict)
                and palette
                and all(
                    isinstance(k, str) and isinstance(v, str) and _HEX.fullmatch(v)
                    for k, v in palette.items()
                )
            )
            if not ok:
                raise DownloadError(f"{where}: printed cre_line_palette is not label -> #RRGGBB")
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\n")
            writer.writerow(PALETTE_HEADER)
            writer.writerows(palette.items())
            return buf.getvalue().encode()
    raise DownloadError(f"{where}: no cell prints cre_line_palette")


EXTRACTORS = {"palette_from_notebook": palette_from_notebook}
"""Extractors for files that exist only as printed notebook output: (bytes, name) -> bytes."""
