"""Download the raw data from its pinned public URLs (for users without our DVC remote).

Not a DVC stage: ``data/raw`` is a tracked input (``data/raw.dvc``), and this command
rebuilds it byte for byte from the public GitHub repositories, verifying every file
against the md5 and size DVC recorded. See ``data/README.md``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from ephys2expr import paths
from ephys2expr.cli import dir_option, friendly_errors, run_stage, stage_app
from ephys2expr.download import DEFAULT_TIMEOUT, GITHUB_RAW, describe, download

app = stage_app(None)


HELP = (
    "Fetch each raw file from its pinned public URL, verify md5 and size, write atomically."
    "\n\nFiles already present with the right checksum are skipped; every other file goes to a"
    " temporary file and is renamed into place only if its md5 and size match data/raw.dvc."
    "\n\ndriver_lines_palette.csv has no file of its own: it is rebuilt from the palette printed"
    " in the pinned 'Validating Predictions.ipynb' and verified like the others."
    " online_table3_excerpt.csv comes only from the DVC remote (dvc pull data/raw.dvc): a full"
    " run reports it and still exits 0; asking for it with --only while it is missing is an error."
    "\n\nNeeds internet access to raw.githubusercontent.com (or a mirror given with --base-url)."
)


@app.command(help=HELP)
@friendly_errors
def main(
    raw_dir: Path = dir_option(
        "raw-dir", paths.RAW, "Folder to fill (the DVC-tracked raw data folder)."
    ),
    only: list[str] | None = typer.Option(
        None,
        "--only",
        help="Fetch only this file (path under data/raw or bare file name); repeatable.",
    ),
    base_url: str = typer.Option(
        GITHUB_RAW,
        "--base-url",
        help="Replace https://raw.githubusercontent.com (a mirror or a test server laid out "
        "as <owner>/<repo>/<commit>/<path>).",
    ),
    timeout: float = typer.Option(
        DEFAULT_TIMEOUT, "--timeout", min=0.01, help="Socket timeout per connect/read, seconds."
    ),
    list_only: bool = typer.Option(
        False, "--list", help="Print the manifest (path, size, md5, URL) and download nothing."
    ),
) -> None:
    """Download the raw data (see :data:`HELP`)."""
    if list_only:
        for line in describe(base_url):
            typer.echo(line)
        return
    download(raw_dir, only=only, base_url=base_url, timeout=timeout)


if __name__ == "__main__":
    run_stage(app)
