"""Fill a raw folder with verified copies of the manifest's files."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ephys2expr.download.fetch import DEFAULT_TIMEOUT, fetch, matches
from ephys2expr.download.sources import GITHUB_RAW, SOURCES, DownloadError, select

log = logging.getLogger("ephys2expr")


@dataclass
class Report:
    """What :func:`download` did, per relpath."""

    downloaded: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    dvc_only_missing: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def download(
    dest: str | Path,
    only: Sequence[str] | None = None,
    base_url: str = GITHUB_RAW,
    timeout: float = DEFAULT_TIMEOUT,
) -> Report:
    """Make ``dest`` hold verified copies of the manifest's files.

    Files already present with the right md5 and size are skipped (so re-running is
    cheap and changes nothing); stale ones are replaced only by a verified download.
    Every file is attempted even if an earlier one fails; one log line per file.

    Parameters
    ----------
    dest : path
        Destination folder (``data/raw``).
    only : list of str, optional
        Restrict to these files (relpath or file name).
    base_url : str
        Replaces ``https://raw.githubusercontent.com`` (a mirror, or a test server).
    timeout : float
        Socket timeout in seconds for connecting and for each read.

    Returns
    -------
    Report
        Lists of downloaded, already-present and DVC-only-missing files.

    Raises
    ------
    DownloadError
        If any file failed, or a file that exists only on the DVC remote was asked
        for explicitly with ``only`` and is missing. Raised after all files were tried.
    """
    dest = Path(dest)
    chosen = select(only)
    report = Report()
    n = len(chosen)
    for i, source in enumerate(chosen, start=1):
        _get_one(source, dest, report, (i, n), base_url, timeout)

    log.info(
        "download: %d downloaded, %d already present, %d DVC-only missing, %d failed",
        len(report.downloaded),
        len(report.present),
        len(report.dvc_only_missing),
        len(report.failed),
    )
    _raise_failures(report, n, only)
    return report


def _get_one(source, dest: Path, report: Report, position, base_url: str, timeout: float) -> None:
    """One file: skipped if present and verified, noted if only on the DVC remote, else
    fetched; the outcome goes into ``report`` and one log line."""
    i, n = position
    tag = f"[{i}/{n}] {source.relpath}"
    target = dest / source.relpath
    if matches(target, source):
        report.present.append(source.relpath)
        log.info("%s: already present, md5 ok, skipped", tag)
        return
    stale = target.exists()
    if not source.downloadable:
        report.dvc_only_missing.append(source.relpath)
        state = "present but checksum differs" if stale else "missing"
        log.warning(
            "%s: %s; no public raw URL (%s), it comes only from the DVC remote: dvc pull",
            tag,
            state,
            source.origin,
        )
        return
    try:
        url = fetch(source, dest, base_url=base_url, timeout=timeout)
    except DownloadError as exc:
        report.failed[source.relpath] = str(exc)
        log.error("[%d/%d] FAILED: %s", i, n, exc)
        return
    report.downloaded.append(source.relpath)
    replaced = " (replaced a file with the wrong checksum)" if stale else ""
    how = "extracted" if source.extract else "downloaded"
    log.info("%s: %s %d bytes, md5 ok%s from %s", tag, how, source.size, replaced, url)


def _raise_failures(report: Report, n: int, only) -> None:
    """The one error of a download with failed files, or DVC-only files asked for."""
    if report.failed:
        if len(report.failed) == 1:
            raise DownloadError(next(iter(report.failed.values())))
        names = ", ".join(report.failed)
        raise DownloadError(f"{len(report.failed)} of {n} files failed (see above): {names}")
    if only and report.dvc_only_missing:
        names = ", ".join(report.dvc_only_missing)
        raise DownloadError(
            f"{names}: printed notebook output with no public URL; get it from the DVC remote "
            "with `dvc pull data/raw.dvc` (see data/README.md)"
        )


def describe(base_url: str = GITHUB_RAW) -> list[str]:
    """One line per manifest entry: relpath, size, md5 and URL (or where it comes from)."""
    lines = []
    for s in SOURCES:
        if not s.downloadable:
            where = f"DVC remote only ({s.origin})"
        elif s.extract:
            where = f"extracted from {s.url(base_url)}"
        else:
            where = s.url(base_url)
        lines.append(f"{s.relpath}\t{s.size}\t{s.md5}\t{where}")
    return lines
