"""The same on every machine: what git tracks does not follow the last bits of the numbers.

Another CPU changes floats in their last bits. The session's small pipeline
(``pipeline_repo``: the project's dvc.yaml as written, real raw data) is rebuilt from its
prepared tables with 1e-12 relative noise added to every float, the most another machine's
kernels change them by: every git-tracked file (reports, metrics, plot tables and PNGs) must
come out byte-identical; only dvc.lock (the tables' hashes) may differ.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.dvc_repo import copy_repo, dvc_env, sh


def _add_noise(path, rng) -> None:
    table = pd.read_parquet(path)
    floats = [c for c in table.columns if pd.api.types.is_float_dtype(table[c])]
    for col in floats:
        values = table[col].to_numpy(dtype=float)
        table[col] = values * (1 + 1e-12 * rng.choice([-1.0, 1.0], size=len(values)))
    table.to_parquet(path)


# What this test found (issue #29): a cell on the edge of the training range jumped to a far
# cell's interval when 1e-12 moved it out (model.ood.EDGE_TOLERANCE), and the report gave the
# exact bytes of the compressed h5ad files (now MB to 3 digits).
def test_tracked_outputs_are_identical_under_1e_12_noise(pipeline_repo, tmp_path):
    repo, env = copy_repo(pipeline_repo, tmp_path / "repo"), dvc_env()
    rng = np.random.default_rng(0)
    tables = sorted((repo / "data" / "prepared").rglob("*.parquet"))
    assert tables
    for path in tables:
        _add_noise(path, rng)
    # train and predict of both sources again, on the noisy tables (prepare not rerun)
    stages = [f"{s}@{src}" for s in ("train", "predict") for src in ("rds", "scala2021")]
    sh(env, repo, "dvc", "repro", "-s", *stages)
    changed = sh(env, repo, "git", "status", "--porcelain").splitlines()
    diff = (
        sh(env, repo, "git", "diff", "--stat", "--", ".", ":!dvc.lock")
        + sh(env, repo, "git", "diff", "-U0", "--", "*.json", "*.csv")[:6000]
    )
    assert changed == [" M dvc.lock"], diff
