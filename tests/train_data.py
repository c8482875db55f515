"""Small real training inputs for the train tests: the 20 real types, a few hundred genes."""

from __future__ import annotations

import pandas as pd

from ephys2expr.features import CORE_FEATURES
from ephys2expr.taxonomy import CLASS_MARKERS
from ephys2expr.train.settings import TrainSettings


def train_settings(**values) -> TrainSettings:
    """Training settings as the stage builds them: the defaults (= params.yaml's train
    section) with these keys overridden."""
    return TrainSettings.from_params({"train": values})


def small_real_inputs(raw_dir, n_variable: int = 150, n_flat: int = 50):
    """(features, targets, types) from the real table: markers, the most variable genes
    and some nearly constant ones (the genes the null and the penalty must leave alone)."""
    from ephys2expr.prepare.run import load_training_set

    training = load_training_set("rds", raw_dir=raw_dir)
    features = training.features[CORE_FEATURES].astype(float)
    targets = training.targets[list(features.index)]
    sd = targets.std(axis=1)
    targets = targets[sd > 0]
    sd = sd[sd > 0].sort_values()
    genes = list(
        dict.fromkeys(
            [g for g in CLASS_MARKERS if g in targets.index]
            + list(sd.index[-n_variable:])
            + list(sd.index[:: max(1, len(sd) // n_flat)][:n_flat])
        )
    )
    types = training.types.loc[features.index]
    return features, targets.loc[genes].astype(float), pd.DataFrame(types)


def write_small_prepared(raw_dir, folder, n_variable: int = 60, n_flat: int = 20):
    """Prepare's three training tables of :func:`small_real_inputs` written into ``folder``
    (as ``data/prepared/<source>`` holds them), and per-cell tables ``cells_aibs_v6`` /
    ``cells_aibs_v10`` (the types' features as cells; in v10 12 cells lack tau and cap, 3
    adratio: the derived sets are the full set and ``no_tau_cap``); returns the folder."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    features, targets, types = small_real_inputs(raw_dir, n_variable=n_variable, n_flat=n_flat)
    features.to_parquet(folder / "train_features.parquet")
    targets.to_parquet(folder / "train_targets.parquet")
    types.to_parquet(folder / "train_types.parquet")
    cells = features.reset_index(drop=True)
    cells.index = [f"c{i}" for i in range(len(cells))]
    cells.index.name = "cell_id"
    cells.iloc[:10].to_parquet(folder / "cells_aibs_v6.parquet")
    v10 = cells.iloc[:15].copy()
    v10.iloc[:12, [list(v10.columns).index(f) for f in ("tau", "cap")]] = float("nan")
    v10.iloc[12:, list(v10.columns).index("adratio")] = float("nan")
    v10.to_parquet(folder / "cells_aibs_v10.parquet")
    return folder
