"""Fetch one manifest file over HTTP and verify it, atomically."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import urllib.error
import urllib.request
from pathlib import Path

from ephys2expr.download.palette_notebook import EXTRACTORS
from ephys2expr.download.sources import GITHUB_RAW, DownloadError, Source
from ephys2expr.io import atomic_path, file_checksum

DEFAULT_TIMEOUT = 60.0
_CHUNK = 1 << 16
_MAX_NOTEBOOK_BYTES = 50_000_000  # a notebook with images is a few MB; refuse anything absurd


def matches(path: Path, source: Source) -> bool:
    """True when ``path`` is a file with the manifest's size and md5."""
    # Size first: a cheap stat rules out most stale files without reading them.
    if not path.is_file() or path.stat().st_size != source.size:
        return False
    return file_checksum(path)[0] == source.md5


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
