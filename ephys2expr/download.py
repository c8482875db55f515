"""Fetch the raw data from its pinned public URLs, for users without our DVC remote.

The manifest :data:`SOURCES` lists every file under ``data/raw/`` with the md5 and
size that ``dvc add data/raw`` recorded (``data/raw.dvc``), and, where one exists,
the public repository, commit and path it was published at. :func:`download`
fetches each file to a temporary file in the destination folder, checks size and
md5, and only then renames it into place, so a failed or corrupted download never
leaves a file behind.

Two files are printed notebook outputs with no URL of their own; they come only
from the DVC remote (see ``data/README.md``).
"""

from __future__ import annotations

import ast
import contextlib
import csv
import hashlib
import http.client
import io
import json
import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ephys2expr.errors import InputError
from ephys2expr.io import atomic_path, file_checksum

log = logging.getLogger("ephys2expr")

GITHUB_RAW = "https://raw.githubusercontent.com"
"""Default base URL; a file's URL is ``<base>/<owner>/<repo>/<commit>/<path>``."""

DEFAULT_TIMEOUT = 60.0
_CHUNK = 1 << 16
_HEX = re.compile(r"#[0-9A-Fa-f]{6}")

# Commits exactly as data/PROVENANCE.md pins them (abbreviated SHAs, which GitHub resolves).
_GENEEXPR = ("youngseok-seo/GeneExpression", "628efe8e")
_QC_MANUSCRIPT = ("PavlidisLab/patchSeqQCManuscript", "3e2cf955")
_QC = ("PavlidisLab/patchSeqQC", "8b8b4022")
_TASIC = ("AllenInstitute/tasic2016data", "8024b0f9")


class DownloadError(InputError):
    """A file could not be fetched or did not match its checksum (one line, names the file)."""


@dataclass(frozen=True)
class Source:
    """One raw file: where it goes, what it must hash to, and where it is published.

    Parameters
    ----------
    relpath : str
        Path under ``data/raw/`` (POSIX separators), as in DVC's directory manifest.
    md5 : str
        MD5 of the file's bytes, as recorded by ``dvc add``.
    size : int
        Size in bytes.
    repo : str or None
        ``owner/name`` of the public GitHub repository; ``None`` if there is no raw URL.
    commit : str or None
        The pinned commit (as given in PROVENANCE.md).
    path : str or None
        Path of the file inside ``repo`` at ``commit``.
    origin : str
        Where a file without a raw file of its own comes from (shown to the user).
    extract : str or None
        Name of an extractor in :data:`EXTRACTORS` when the URL is not the file itself
        but a notebook whose printed output holds it; ``None`` for a plain download.
    """

    relpath: str
    md5: str
    size: int
    repo: str | None = None
    commit: str | None = None
    path: str | None = None
    origin: str = field(default="", compare=False)
    extract: str | None = None

    @property
    def name(self) -> str:
        """The file name (last component of :attr:`relpath`)."""
        return self.relpath.rsplit("/", 1)[-1]

    @property
    def downloadable(self) -> bool:
        """True when the file can be fetched (directly or extracted) from a pinned public URL."""
        return self.repo is not None

    def url(self, base_url: str = GITHUB_RAW) -> str:
        """The file's URL under ``base_url`` (``<base>/<owner>/<repo>/<commit>/<path>``)."""
        if not self.downloadable:
            raise ValueError(f"{self.relpath} has no public URL")
        tail = urllib.parse.quote(f"{self.repo}/{self.commit}/{self.path}")
        return f"{base_url.rstrip('/')}/{tail}"


def _gh(repo_commit: tuple[str, str], path: str) -> dict:
    return {"repo": repo_commit[0], "commit": repo_commit[1], "path": path}


SOURCES: tuple[Source, ...] = (
    Source(
        "aibs/aibs_aggregated_ephys_plus_morpho_v10.csv",
        "3af8d113dd8fe025fbfbb472fad79454",
        2664770,
        **_gh(_GENEEXPR, "data/aibs_aggregated_ephys_plus_morpho_v10.csv"),
    ),
    Source(
        "aibs/aibs_aggregated_ephys_v6.csv",
        "f72034b08f66e8c84d924599de135658",
        804997,
        **_gh(_GENEEXPR, "data/aibs_aggregated_ephys_v6.csv"),
    ),
    Source(
        "aibs/aibs_ephys.rda",
        "60f4c8f44b99ec621cb9bab39e7c5ec9",
        373129,
        **_gh(_QC_MANUSCRIPT, "data/aibs_ephys.rda"),
    ),
    Source(
        "aibs/driver_lines_palette.csv",
        "e3defc1cfd8c062767b74f2ac5295812",
        1821,
        **_gh(_GENEEXPR, "Validating Predictions.ipynb"),
        origin="printed output of 'Validating Predictions.ipynb' in youngseok-seo/GeneExpression",
        extract="palette_from_notebook",
    ),
    Source(
        "cadwell2016/E-MTAB-4092.sdrf.txt",
        "be6a7e53bf99f41c059118ed986b3890",
        22064,
        **_gh(_QC_MANUSCRIPT, "data-raw/cadwell/E-MTAB-4092.sdrf.txt"),
    ),
    Source(
        "cadwell2016/IntPhysiologyFinal.mat",
        "c420677a360c89d4790093d722b725e8",
        3518,
        **_gh(_QC_MANUSCRIPT, "data-raw/cadwell/IntPhysiologyFinal.mat"),
    ),
    Source(
        "cadwell2016/cadwell_expr.rda",
        "cb30def6eab0f170c378a18e8d1a04e0",
        1813727,
        **_gh(_QC, "data/cadwell_expr.rda"),
    ),
    Source(
        "cadwell2016/cadwell_meta.rda",
        "d0022821c8eba09defaa861fe5f92327",
        1655,
        **_gh(_QC, "data/cadwell_meta.rda"),
    ),
    Source(
        "genes/entrenz_symbol_s.csv",
        "042c1534763c35e7591da45dbb6c3f97",
        176371,
        **_gh(_GENEEXPR, "data/entrenz_symbol_s.csv"),
    ),
    Source(
        "genes/tasic_gene_names.rda",
        "6054cafb4252f5b26fea8be2d51f8070",
        184566,
        **_gh(_QC_MANUSCRIPT, "data/tasic_gene_names.rda"),
    ),
    Source(
        "tasic2016/aibsExprData.rda",
        "dad2b321e88b6ec9c3f744cd00c72d81",
        186142,
        **_gh(_QC, "data/aibsExprData.rda"),
    ),
    Source(
        "tasic2016/aibsExprMeta.rda",
        "2bc6a5bd16157129f153e8ad72904788",
        32054,
        **_gh(_QC, "data/aibsExprMeta.rda"),
    ),
    Source(
        "tasic2016/tasic_2016_anno.RData",
        "6070adb254da86ee66b15d9460da7e7a",
        22708,
        **_gh(_TASIC, "data/tasic_2016_anno.RData"),
    ),
    Source(
        "training/aibs_cre_expr_ephys.rda",
        "13e15ed06ec3fecb98b4b77afa2e0c84",
        3358993,
        **_gh(_QC_MANUSCRIPT, "data/aibs_cre_expr_ephys.rda"),
    ),
    Source(
        "training/online_table3_excerpt.csv",
        "15deb442798f9073c025604430129aa7",
        13031,
        origin=(
            "printed outputs (cells 1-2) of 'Relating Ephys Features to Gene Expression.ipynb'"
            " in youngseok-seo/GeneExpression"
        ),
    ),
)
"""Every file of ``data/raw/``; md5/size equal DVC's manifest for ``data/raw.dvc``."""


def dvc_dir_md5(sources: Iterable[Source] = SOURCES) -> str:
    """The md5 DVC records for a directory holding exactly ``sources``.

    DVC hashes the JSON of its ``.dir`` manifest (entries sorted by relpath, keys
    sorted) and appends ``.dir``; equal values mean the manifest describes the same
    tree as ``data/raw.dvc``.
    """
    entries = sorted(
        ({"md5": s.md5, "relpath": s.relpath} for s in sources), key=lambda e: e["relpath"]
    )
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest() + ".dir"


def select(only: Sequence[str] | None) -> list[Source]:
    """The sources named in ``only`` (relpath or bare file name); all when empty.

    Raises
    ------
    InputError
        If a name matches no file of the manifest.
    """
    if not only:
        return list(SOURCES)
    chosen: list[Source] = []
    for name in only:
        key = name.strip().strip("/")
        hits = [s for s in SOURCES if key in (s.relpath, s.name)]
        if not hits:
            valid = ", ".join(s.relpath for s in SOURCES)
            raise InputError(f"--only {name!r}: no such raw file; known files: {valid}")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


def _matches(path: Path, source: Source) -> bool:
    # Size first: a cheap stat rules out most stale files without reading them.
    if not path.is_file() or path.stat().st_size != source.size:
        return False
    return file_checksum(path)[0] == source.md5


PALETTE_HEADER = ("driver_lines_label", "driver_lines_color")
_MAX_NOTEBOOK_BYTES = 50_000_000  # a notebook with images is a few MB; refuse anything absurd


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


@contextlib.contextmanager
def _network_errors(source: Source, url: str, timeout: float):
    """Turn urllib/socket failures into one-line :class:`DownloadError` naming the file."""
    try:
        yield
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{source.relpath}: HTTP {exc.code} {exc.reason} from {url}") from None
    except urllib.error.URLError as exc:
        raise DownloadError(f"{source.relpath}: cannot reach {url}: {exc.reason}") from None
    except http.client.HTTPException as exc:
        raise DownloadError(
            f"{source.relpath}: broken HTTP response from {url}: {type(exc).__name__}"
        ) from None
    except TimeoutError:
        raise DownloadError(
            f"{source.relpath}: timed out after {timeout:g} s reading {url}"
        ) from None
    except ConnectionError as exc:
        raise DownloadError(
            f"{source.relpath}: connection lost reading {url}: {type(exc).__name__}"
        ) from None


def _stream(resp, out, limit: int) -> tuple[str, int]:
    """Copy at most ``limit`` bytes of ``resp`` to ``out``; return (md5, bytes copied)."""
    digest = hashlib.md5()
    size = 0
    while size < limit:
        chunk = resp.read(min(_CHUNK, limit - size))
        if not chunk:
            break
        digest.update(chunk)
        out.write(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def fetch(
    source: Source, dest: Path, base_url: str = GITHUB_RAW, timeout: float = DEFAULT_TIMEOUT
) -> str:
    """Download one file into ``dest / source.relpath`` and verify it, atomically.

    The bytes go to a temporary file next to the target; it is renamed into place only
    when size and md5 match the manifest, otherwise it is deleted. For a source with an
    extractor, the notebook is fetched and the extracted bytes are what is verified.

    Returns
    -------
    str
        The URL the file was fetched from.

    Raises
    ------
    DownloadError
        On an HTTP/network error, a timeout, a failed extraction or a size/md5 mismatch.
    """
    url = source.url(base_url)
    target = dest / source.relpath
    request = urllib.request.Request(url, headers={"User-Agent": "ephys2expr-download"})
    try:
        with atomic_path(target) as tmp:
            if source.extract is None:
                with (
                    _network_errors(source, url, timeout),
                    urllib.request.urlopen(request, timeout=timeout) as resp,
                    open(tmp, "wb") as out,
                ):
                    # One byte more than expected is enough to detect an oversized
                    # (wrong) file without downloading all of it.
                    got, size = _stream(resp, out, source.size + 1)
                what = f"from {url}"
            else:
                buf = io.BytesIO()
                with (
                    _network_errors(source, url, timeout),
                    urllib.request.urlopen(request, timeout=timeout) as resp,
                ):
                    _, n = _stream(resp, buf, _MAX_NOTEBOOK_BYTES + 1)
                if n > _MAX_NOTEBOOK_BYTES:
                    raise DownloadError(f"{source.relpath}: {url} is larger than {n - 1} bytes")
                content = EXTRACTORS[source.extract](buf.getvalue(), f"{source.relpath}: {url}")
                tmp.write_bytes(content)
                got, size = hashlib.md5(content).hexdigest(), len(content)
                what = f"extracted from {url}"
            if size != source.size or got != source.md5:
                more = "+" if size > source.size else ""
                hint = "" if source.extract is None else "; get it with `dvc pull data/raw.dvc`"
                raise DownloadError(
                    f"{source.relpath}: checksum mismatch {what}: expected md5 {source.md5} "
                    f"size {source.size}, got md5 {got} size {size}{more}{hint}"
                )
    finally:
        # atomic_path creates missing parent folders before the download starts;
        # remove the ones that stayed empty so a failure leaves nothing behind.
        _prune_empty_parents(target.parent, dest)
    return url


def _prune_empty_parents(folder: Path, stop: Path) -> None:
    folder, stop = folder.resolve(), stop.resolve()
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


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
        tag = f"[{i}/{n}] {source.relpath}"
        target = dest / source.relpath
        if _matches(target, source):
            report.present.append(source.relpath)
            log.info("%s: already present, md5 ok, skipped", tag)
            continue
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
            continue
        try:
            url = fetch(source, dest, base_url=base_url, timeout=timeout)
        except DownloadError as exc:
            report.failed[source.relpath] = str(exc)
            log.error("[%d/%d] FAILED: %s", i, n, exc)
            continue
        report.downloaded.append(source.relpath)
        replaced = " (replaced a file with the wrong checksum)" if stale else ""
        how = "extracted" if source.extract else "downloaded"
        log.info("%s: %s %d bytes, md5 ok%s from %s", tag, how, source.size, replaced, url)

    log.info(
        "download: %d downloaded, %d already present, %d DVC-only missing, %d failed",
        len(report.downloaded),
        len(report.present),
        len(report.dvc_only_missing),
        len(report.failed),
    )
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
    return report


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
