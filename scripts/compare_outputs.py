"""Compare this checkout's pipeline outputs with the ones recorded in another commit's dvc.lock.

Run after ``dvc repro``::

    python scripts/compare_outputs.py 5125068          # the commit to compare with
    python scripts/compare_outputs.py /tmp/dvc.lock    # or a saved lock file

The float32 predictions depend on the CPU's BLAS kernels (the same bytes on one machine,
not across machines): compare with a lock of a run on the same machine.

Every output path present in both lock files (models, predictions, tables, plots) is compared
by the md5 DVC recorded for it; metrics files are listed but not required to match (their
layout may change). Exit code 1 if any non-metrics output differs.
"""

from __future__ import annotations

import os
import subprocess
import sys

import yaml


def lock_outputs(text: str) -> dict[str, str]:
    """``{path: md5}`` of every stage output in a dvc.lock text."""
    lock = yaml.safe_load(text) or {}
    out = {}
    for stage in (lock.get("stages") or {}).values():
        for item in stage.get("outs", []):
            out[item["path"]] = item.get("md5")
    return out


def main(rev: str) -> int:
    if os.path.isfile(rev):  # a saved dvc.lock (e.g. of a run on this machine)
        with open(rev) as fh:
            old = lock_outputs(fh.read())
    else:
        shown = subprocess.run(["git", "show", f"{rev}:dvc.lock"], capture_output=True, text=True)
        if shown.returncode != 0:
            print(
                f"error: {rev}: no such commit or file with a dvc.lock "
                f"({shown.stderr.strip().splitlines()[-1] if shown.stderr.strip() else 'git'})",
                file=sys.stderr,
            )
            return 2
        old = lock_outputs(shown.stdout)
    with open("dvc.lock") as fh:
        new = lock_outputs(fh.read())
    metrics = {p for p in old if p.startswith("metrics/")}
    differ = []
    for path in sorted(old):
        if path not in new:
            print(f"gone      {path}")
            continue
        same = old[path] == new[path]
        print(f"{'same' if same else 'DIFFERENT':9} {path}")
        if not same and path not in metrics:
            differ.append(path)
    for path in sorted(set(new) - set(old)):
        print(f"new       {path}")
    print(f"{len(differ)} output(s) differ" if differ else "all outputs identical")
    return 1 if differ else 0


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(
        description="Compare this checkout's pipeline outputs (dvc.lock) with another commit's "
        "or a saved dvc.lock; exit code 1 if a non-metrics output differs."
    )
    parser.add_argument(
        "rev",
        nargs="?",
        default="HEAD",
        help="a commit (default HEAD) or the path of a saved dvc.lock",
    )
    sys.exit(main(parser.parse_args().rev))
