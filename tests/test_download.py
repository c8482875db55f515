"""The download command against a local HTTP server that serves copies of the real raw files.

The server lays files out like raw.githubusercontent.com (``/<owner>/<repo>/<commit>/<path>``)
and the command is pointed at it with ``--base-url``; nothing here touches the internet.
"""

from __future__ import annotations

import csv
import functools
import http.server
import json
import pprint
import shutil
import socket
import threading
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ephys2expr import paths
from ephys2expr.download import (
    SOURCES,
    DownloadError,
    Source,
    dvc_dir_md5,
    file_checksum,
    palette_from_notebook,
)
from stages.download import app

RAW = paths.ROOT / paths.RAW
RAW_DVC = paths.ROOT / "data" / "raw.dvc"
DOWNLOADABLE = [s for s in SOURCES if s.downloadable]
DVC_ONLY = [s for s in SOURCES if not s.downloadable]
PALETTE = "aibs/driver_lines_palette.csv"

needs_raw = pytest.mark.skipif(
    not all((RAW / s.relpath).is_file() for s in SOURCES),
    reason="data/raw not pulled (dvc pull data/raw.dvc)",
)

runner = CliRunner()


def _quiet_handler(directory: Path, requests: list[str]):
    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    return functools.partial(Handler, directory=str(directory))


def notebook_printing(palette: dict[str, str]) -> bytes:
    """A notebook laid out like 'Validating Predictions.ipynb': the palette cell's output is
    the dict as IPython prints it (pprint layout, insertion order), among other cells."""
    printed = pprint.pformat(palette, sort_dicts=False).splitlines(keepends=True)
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": ["# Validating predictions"]},
        {
            "cell_type": "code",
            "execution_count": 193,
            "metadata": {},
            "source": ["tsne_results = tsne.fit_transform(x_ephys)"],
            "outputs": [{"name": "stdout", "output_type": "stream", "text": ["[t-SNE] done\n"]}],
        },
        {
            "cell_type": "code",
            "execution_count": 195,
            "metadata": {},
            "source": [
                "cre = pd.read_csv('./data/driver_lines_anno.csv')\n",
                "cre_line_palette = {}\n",
                "cre_line_palette.update({'Rorb-IRES2-Cre':'#2B8C88'})\n",
                "    \n",
                "cre_line_palette",
            ],
            "outputs": [
                {
                    "data": {"text/plain": printed},
                    "execution_count": 195,
                    "metadata": {},
                    "output_type": "execute_result",
                }
            ],
        },
        {
            "cell_type": "code",
            "execution_count": 196,
            "metadata": {},
            "source": ["sns.scatterplot(x='x_tsne', y='y_tsne', palette=cre_line_palette)"],
            "outputs": [
                {
                    "data": {"image/png": "iVBORw0KGgo=", "text/plain": ["<Figure>"]},
                    "metadata": {},
                    "output_type": "display_data",
                }
            ],
        },
    ]
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 2}
    return json.dumps(nb, indent=1).encode()


def real_palette() -> dict[str, str]:
    rows = list(csv.reader((RAW / PALETTE).read_text().splitlines()))
    assert rows[0] == ["driver_lines_label", "driver_lines_color"]
    return dict(rows[1:])


@pytest.fixture
def served(tmp_path):
    """Copies of the real raw files behind http://127.0.0.1:<port>, laid out like GitHub raw;
    the palette's notebook is rebuilt from the real palette."""
    root = tmp_path / "srv"
    for s in DOWNLOADABLE:
        target = root / s.repo / s.commit / s.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if s.extract:
            target.write_bytes(notebook_printing(real_palette()))
        else:
            # copy, never link: tests corrupt these files
            shutil.copyfile(RAW / s.relpath, target)
    requests: list[str] = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _quiet_handler(root, requests))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield base, root, requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _run(*args: str):
    return runner.invoke(app, list(args))


def _files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _served_path(root: Path, relpath: str) -> Path:
    s = next(s for s in SOURCES if s.relpath == relpath)
    return root / s.repo / s.commit / s.path


# ---------------------------------------------------------------- manifest


def test_manifest_is_the_tree_dvc_recorded():
    """The manifest hashes to the directory md5, size and file count in data/raw.dvc."""
    out = yaml.safe_load(RAW_DVC.read_text())["outs"][0]
    assert dvc_dir_md5(SOURCES) == out["md5"] == "e7960551f6422d39bb54bab1a60318c7.dir"
    assert sum(s.size for s in SOURCES) == out["size"]
    assert len(SOURCES) == out["nfiles"] == len({s.relpath for s in SOURCES})


def test_manifest_detects_a_changed_entry():
    changed = [Source(SOURCES[0].relpath, "0" * 32, SOURCES[0].size), *SOURCES[1:]]
    assert dvc_dir_md5(changed) != dvc_dir_md5(SOURCES)


@needs_raw
def test_manifest_matches_local_raw_files():
    assert _files_under(RAW) >= {s.relpath for s in SOURCES}
    for s in SOURCES:
        assert file_checksum(RAW / s.relpath) == (s.md5, s.size), s.relpath


def test_urls_use_pinned_commits():
    by_repo = {s.repo: s.commit for s in DOWNLOADABLE}
    assert by_repo == {
        "youngseok-seo/GeneExpression": "628efe8e",
        "PavlidisLab/patchSeqQCManuscript": "3e2cf955",
        "PavlidisLab/patchSeqQC": "8b8b4022",
        "AllenInstitute/tasic2016data": "8024b0f9",
        "berenslab/mini-atlas": "3bf98a52",
        "daifengwanglab/scMNC": "ae9e39b5",
        "berenslab/sBNN": "4ff8ba81",
        "AllenInstitute/patchseq_human_L1": "7777857c",
        "AllenInstitute/patchseq_human_L23": "3daf9f08",
        "swharden/pyABF": "3ad9cd6f",
        "BlueBrain/BluePyEfe": "11a1e0c5",
    }
    s = next(s for s in SOURCES if s.relpath == "cadwell2016/IntPhysiologyFinal.mat")
    assert s.url() == (
        "https://raw.githubusercontent.com/PavlidisLab/patchSeqQCManuscript/3e2cf955/"
        "data-raw/cadwell/IntPhysiologyFinal.mat"
    )
    assert [s.relpath for s in DVC_ONLY] == ["training/online_table3_excerpt.csv"]
    palette = next(s for s in SOURCES if s.relpath == PALETTE)
    assert palette.extract and palette.url() == (
        "https://raw.githubusercontent.com/youngseok-seo/GeneExpression/628efe8e/"
        "Validating%20Predictions.ipynb"
    )


# ---------------------------------------------------------------- download


@needs_raw
def test_full_download_gives_the_real_bytes_and_reports_dvc_only_files(served, tmp_path):
    base, _, _ = served
    dest = tmp_path / "raw"
    result = _run("--raw-dir", str(dest), "--base-url", base, "--timeout", "30")
    assert result.exit_code == 0, result.output
    assert _files_under(dest) == {s.relpath for s in DOWNLOADABLE}
    for s in DOWNLOADABLE:
        assert (dest / s.relpath).read_bytes() == (RAW / s.relpath).read_bytes(), s.relpath


@needs_raw
def test_progress_one_line_per_file(served, tmp_path, caplog):
    base, _, _ = served
    caplog.set_level("INFO", logger="ephys2expr")
    result = _run("--raw-dir", str(tmp_path / "raw"), "--base-url", base)
    assert result.exit_code == 0, result.output
    for s in SOURCES:
        lines = [r.getMessage() for r in caplog.records if s.relpath in r.getMessage()]
        assert len(lines) == 1, (s.relpath, lines)
        if s.extract:
            assert "extracted" in lines[0] and "md5 ok" in lines[0]
        elif s.downloadable:
            assert "downloaded" in lines[0] and "md5 ok" in lines[0]
        else:
            assert "DVC remote" in lines[0] and "dvc pull" in lines[0]


@needs_raw
def test_rerun_is_idempotent(served, tmp_path):
    base, _, requests = served
    dest = tmp_path / "raw"
    assert _run("--raw-dir", str(dest), "--base-url", base).exit_code == 0
    n_first = len(requests)
    assert n_first == len(DOWNLOADABLE)
    stats = {s.relpath: (dest / s.relpath).stat() for s in DOWNLOADABLE}

    result = _run("--raw-dir", str(dest), "--base-url", base)
    assert result.exit_code == 0, result.output
    assert len(requests) == n_first  # nothing fetched again
    for relpath, before in stats.items():
        after = (dest / relpath).stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@needs_raw
def test_stale_file_is_replaced_and_dvc_only_file_present_is_accepted(served, tmp_path):
    base, _, _ = served
    dest = tmp_path / "raw"
    stale = dest / "aibs" / "aibs_ephys.rda"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an old, wrong copy")
    table3 = "training/online_table3_excerpt.csv"
    (dest / "training").mkdir()
    shutil.copyfile(RAW / table3, dest / table3)

    result = _run(
        "--raw-dir",
        str(dest),
        "--base-url",
        base,
        "--only",
        "aibs_ephys.rda",
        "--only",
        table3,
    )
    assert result.exit_code == 0, result.output
    assert stale.read_bytes() == (RAW / "aibs" / "aibs_ephys.rda").read_bytes()
    assert _files_under(dest) == {"aibs/aibs_ephys.rda", table3}


@needs_raw
@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupted_download_fails_and_writes_nothing(served, tmp_path, damage):
    base, root, _ = served
    relpath = "training/aibs_cre_expr_ephys.rda"
    src = next(s for s in SOURCES if s.relpath == relpath)
    on_server = _served_path(root, relpath)
    data = bytearray(on_server.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 3]
    on_server.write_bytes(bytes(data))
    dest = tmp_path / "raw"

    result = _run("--raw-dir", str(dest), "--base-url", base, "--only", relpath)

    assert result.exit_code == 2
    err = result.stderr.strip().splitlines()
    assert len(err) == 1
    line = err[0]
    assert line.startswith(f"error: {relpath}: checksum mismatch")
    assert f"expected md5 {src.md5} size {src.size}" in line
    got_md5 = file_checksum(on_server)[0]
    assert f"got md5 {got_md5} size {len(data)}" in line
    assert not dest.exists() or _files_under(dest) == set()  # no file, no temp file
    assert not (dest / "training").exists()


@needs_raw
def test_corrupted_download_keeps_other_files_and_old_copy(served, tmp_path):
    """One bad file fails the run, but the others still land; a stale copy is not touched."""
    base, root, _ = served
    bad = "tasic2016/aibsExprMeta.rda"
    _served_path(root, bad).write_bytes(b"<html>rate limited</html>")
    dest = tmp_path / "raw"
    old = dest / bad
    old.parent.mkdir(parents=True)
    old.write_bytes(b"previous content")

    result = _run("--raw-dir", str(dest), "--base-url", base)

    assert result.exit_code == 2
    assert result.stderr.strip().startswith(f"error: {bad}: checksum mismatch")
    assert old.read_bytes() == b"previous content"
    good = {s.relpath for s in DOWNLOADABLE} - {bad}
    for relpath in good:
        assert (dest / relpath).read_bytes() == (RAW / relpath).read_bytes()
    assert _files_under(dest) == good | {bad}


@needs_raw
def test_missing_file_404(served, tmp_path):
    base, root, _ = served
    relpath = "cadwell2016/IntPhysiologyFinal.mat"
    _served_path(root, relpath).unlink()
    dest = tmp_path / "raw"

    result = _run("--raw-dir", str(dest), "--base-url", base, "--only", "IntPhysiologyFinal.mat")

    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "\n" not in line
    assert line.startswith(f"error: {relpath}: HTTP 404")
    assert f"{base}/PavlidisLab/patchSeqQCManuscript/3e2cf955/data-raw/cadwell/" in line
    assert not (dest / relpath).exists()


@needs_raw
def test_two_failures_are_both_named(served, tmp_path):
    base, root, _ = served
    for relpath in ("genes/entrenz_symbol_s.csv", "cadwell2016/cadwell_meta.rda"):
        _served_path(root, relpath).unlink()
    result = _run("--raw-dir", str(tmp_path / "raw"), "--base-url", base)
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert line.startswith(f"error: 2 of {len(SOURCES)} files failed")
    assert "genes/entrenz_symbol_s.csv" in line and "cadwell2016/cadwell_meta.rda" in line


@needs_raw
def test_palette_extraction_gives_the_tracked_bytes():
    assert (
        palette_from_notebook(notebook_printing(real_palette()), "nb")
        == (RAW / PALETTE).read_bytes()
    )


@pytest.mark.parametrize(
    ("notebook", "message"),
    [
        (b"<html>404</html>", "nb: not a Jupyter notebook"),
        (json.dumps({"cells": []}).encode(), "nb: no cell prints cre_line_palette"),
    ],
)
def test_palette_extraction_rejects_other_notebooks(notebook, message):
    with pytest.raises(DownloadError, match=message):
        palette_from_notebook(notebook, "nb")


def test_palette_extraction_rejects_non_colours():
    with pytest.raises(DownloadError, match="not label -> #RRGGBB"):
        palette_from_notebook(notebook_printing({"Sst-IRES-Cre": "orange"}), "nb")


@needs_raw
def test_palette_from_a_different_notebook_version_fails_cleanly(served, tmp_path):
    """If the pinned notebook printed another palette, the checksum stops it: nothing written."""
    base, root, _ = served
    palette = real_palette()
    palette["wt"] = "#000000"
    _served_path(root, PALETTE).write_bytes(notebook_printing(palette))
    dest = tmp_path / "raw"

    result = _run("--raw-dir", str(dest), "--base-url", base, "--only", "driver_lines_palette.csv")

    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "\n" not in line
    assert line.startswith(f"error: {PALETTE}: checksum mismatch extracted from {base}/")
    assert "expected md5 e3defc1cfd8c062767b74f2ac5295812 size 1821" in line
    assert "dvc pull" in line
    assert not (dest / "aibs").exists()


def test_dvc_only_file_requested_and_missing_is_an_error(tmp_path):
    result = _run("--raw-dir", str(tmp_path / "raw"), "--only", "online_table3_excerpt.csv")
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert line.startswith("error: training/online_table3_excerpt.csv: printed notebook output")
    assert "dvc pull" in line


def test_unknown_only_name(tmp_path):
    result = _run("--raw-dir", str(tmp_path / "raw"), "--only", "nope.csv")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --only 'nope.csv': no such raw file")


def test_unreachable_host_is_a_clear_error(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = _run(
        "--raw-dir",
        str(tmp_path / "raw"),
        "--base-url",
        f"http://127.0.0.1:{port}",
        "--only",
        "aibs_ephys.rda",
        "--timeout",
        "5",
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: aibs/aibs_ephys.rda: cannot reach http://127.0.0.1:")
    assert not (tmp_path / "raw" / "aibs").exists()


def test_stalled_server_times_out(tmp_path):
    """A server that accepts the connection but never answers trips --timeout."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)  # the kernel completes the handshake; nobody ever replies
        port = sock.getsockname()[1]
        result = _run(
            "--raw-dir",
            str(tmp_path / "raw"),
            "--base-url",
            f"http://127.0.0.1:{port}",
            "--only",
            "cadwell_meta.rda",
            "--timeout",
            "0.3",
        )
    assert result.exit_code == 2
    assert "cadwell2016/cadwell_meta.rda: timed out after 0.3 s" in result.stderr
    assert not (tmp_path / "raw" / "cadwell2016").exists()


def test_list_prints_every_file():
    result = _run("--list", "--base-url", "http://mirror.example/raw")
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(SOURCES)
    assert any(
        line.endswith(
            "http://mirror.example/raw/AllenInstitute/tasic2016data/8024b0f9/data/tasic_2016_anno.RData"
        )
        for line in lines
    )
