"""Benchmark the whole pipeline from scratch (``dvc repro -f``) against another commit.

Not a test. For each commit (default: ``main`` and the work tree's ``HEAD``) it makes a git
worktree in a temporary folder, links the real raw data into it (``data/raw``, pulled in
this checkout), gives it a DVC cache of its own and runs ``dvc repro -f`` there, with that
commit's own code (``python -m stages.<name>`` imports the worktree's package: the current
folder comes first on ``sys.path``). Both runs are on the same machine in one call, one
after the other, so their ratio is what to read (issue #29: <= 0.65x of main, or <= 3 min
30 s on a quiet 2-core machine). Per stage, the times DVC printed. The numba compile cache
is warmed by a first run of each unless ``--cold``. Run::

    python -m benchmarks.bench_from_scratch [--base main] [--head HEAD] [--stages train@rds]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd, cwd, env) -> str:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd)} failed in {cwd}:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
        )
    return res.stdout + res.stderr


def _checkout(ref: str, dest: Path) -> None:
    _run(["git", "worktree", "add", "-q", "--detach", str(dest), ref], ROOT, os.environ)
    raw = dest / "data" / "raw"
    if raw.exists():
        shutil.rmtree(raw)
    os.symlink(ROOT / "data" / "raw", raw, target_is_directory=True)  # read only by prepare
    _run(["dvc", "cache", "dir", "--local", str(dest / ".bench-cache")], dest, os.environ)
    _run(["dvc", "config", "--local", "core.analytics", "false"], dest, os.environ)


def _repro(dest: Path, targets: list[str]) -> float:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    t0 = time.perf_counter()
    _run(["dvc", "repro", "-f", *targets], dest, env)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="the commit to compare with")
    parser.add_argument("--head", default="HEAD", help="the commit measured")
    parser.add_argument("--stages", nargs="*", default=[], help="dvc repro targets (all)")
    parser.add_argument("--cold", action="store_true", help="no warm-up run")
    args = parser.parse_args()
    times = {}
    with tempfile.TemporaryDirectory(prefix="bench_scratch_") as tmp:
        try:
            for label, ref in (("base", args.base), ("head", args.head)):
                dest = Path(tmp) / label
                _checkout(ref, dest)
                if not args.cold:  # compiles numba's kernels into the worktree's cache
                    _repro(dest, args.stages)
                times[label] = _repro(dest, args.stages)
                print(
                    f"{label} ({ref}): dvc repro -f {' '.join(args.stages)} {times[label]:.1f} s",
                    flush=True,
                )
        finally:
            for label in ("base", "head"):
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(Path(tmp) / label)],
                    cwd=ROOT,
                    capture_output=True,
                )
    print(
        f"ratio head / base: {times['head'] / times['base']:.2f} "
        "(issue #29: <= 0.65, or <= 210 s on a quiet 2-core machine)"
    )


if __name__ == "__main__":
    main()
