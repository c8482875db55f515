"""Fetch the raw data from its pinned public URLs, for users without our DVC remote.

- :mod:`~ephys2expr.download.sources`: the manifest :data:`SOURCES` (every file of
  ``data/raw`` with DVC's md5/size and its pinned public URL), :func:`select`,
  :func:`dvc_dir_md5`.
- :mod:`~ephys2expr.download.fetch`: :func:`fetch` one file over HTTP into a temporary file,
  check size and md5, only then rename it into place (a failed or corrupted download never
  leaves a file behind).
- :mod:`~ephys2expr.download.palette_notebook`: rebuild ``driver_lines_palette.csv`` from the
  notebook output that printed it.
- :mod:`~ephys2expr.download.run`: :func:`download` (the whole command) and
  :func:`describe` (the manifest as text).
"""

from ephys2expr.download.fetch import DEFAULT_TIMEOUT, fetch
from ephys2expr.download.palette_notebook import EXTRACTORS, palette_from_notebook
from ephys2expr.download.run import Report, describe, download
from ephys2expr.download.sources import (
    GITHUB_RAW,
    SOURCES,
    DownloadError,
    Source,
    dvc_dir_md5,
    select,
)
from ephys2expr.io import file_checksum

__all__ = [
    "DEFAULT_TIMEOUT",
    "GITHUB_RAW",
    "SOURCES",
    "EXTRACTORS",
    "DownloadError",
    "Report",
    "Source",
    "describe",
    "download",
    "dvc_dir_md5",
    "fetch",
    "file_checksum",
    "palette_from_notebook",
    "select",
]
