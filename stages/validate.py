"""Stage validate: predicted expression against measured expression, in pictures and numbers.

Measured references: Tasic 2016 single cells (the 170-gene RData shipped here, or the full
GEO counts layout) and the Cadwell 2016 Patch-seq cells (held out from training; a model on
exactly the features Cadwell has predicts each cell from its own ephys).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import typer

from ephys2expr import paths
from ephys2expr.cli import friendly_errors
from ephys2expr.embedding import EmbeddingRunner, joint_space, mixing_fraction, zscore_columns
from ephys2expr.errors import InputError
from ephys2expr.io import save_figure, write_csv, write_json, write_parquet
from ephys2expr.measured import (
    cre_group,
    exc_inh_truth,
    read_cadwell,
    read_palette,
    read_tasic_geo,
    read_tasic_rda,
)
from ephys2expr.validate_plots import (
    EXC_INH_COLOURS,
    SOURCE_COLOURS,
    SOURCE_MARKERS,
    categorical_colours,
    embedding_figure,
    patchseq_figure,
    type_agreement_figure,
)
from ephys2expr.validation import (
    fit_feature_subset_model,
    label_transfer,
    outside_training_range,
    patchseq_agreement,
    type_agreement,
)

app = typer.Typer(add_completion=False, help=__doc__)
log = logging.getLogger("ephys2expr.validate")

META_COLUMNS = ("cre_line", "layer", "dendrite_type", "species", "brain_region")


def _split_list(text: str) -> list[str]:
    return [s.strip() for s in text.replace("[", "").replace("]", "").split(",") if s.strip()]


def _subsample(index: pd.Index, n_max: int, seed: int) -> pd.Index:
    """Seeded subsample of at most ``n_max`` labels, kept in the original order."""
    if n_max <= 0 or len(index) <= n_max:
        return index
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(index), size=n_max, replace=False))
    return index[pick]


def load_predictions(path: Path, genes: pd.Index) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a predictions table into (cells x genes, metadata) using the model's gene list."""
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    df = pd.read_parquet(path)
    if "cell_id" in df.columns:
        df = df.set_index("cell_id")
    df.index = df.index.astype(str)
    gcols = df.columns.intersection(genes)
    if len(gcols) == 0:
        raise InputError(f"{path}: no column is a gene of the model store")
    if "cre_line" not in df.columns:
        raise InputError(f"{path}: missing column 'cre_line'")
    gset = set(gcols)
    meta = df[[c for c in df.columns if c not in gset]]
    pred = df[gcols].astype(float)
    if not np.isfinite(pred.to_numpy()).all():
        raise InputError(f"{path}: predicted expression has NaN or infinite values")
    return pred, meta


def _coloured_by(labels: pd.Series, palette: dict | None = None) -> dict:
    return categorical_colours(labels, palette)


@app.command()
@friendly_errors
def main(
    predictions: Path = typer.Option(
        paths.PREDICTIONS / "aibs_v6.parquet",
        help="predicted expression (cells x genes + metadata)",
    ),
    cells: Path = typer.Option(
        paths.PREPARED / "cells_aibs_v6.parquet", help="per-cell ephys features of the same cells"
    ),
    model_dir: Path = typer.Option(paths.MODEL, help="model store (for genes and CV r2)"),
    prepared: Path = typer.Option(paths.PREPARED, help="training tables folder"),
    reference: str = typer.Option("rda", help="Tasic 2016 reference: rda | geo"),
    geo_counts: Path = typer.Option(
        Path("GSE71585_RefSeq_counts.csv"), help="GEO counts CSV (reference=geo)"
    ),
    geo_clustering: Path = typer.Option(
        Path("GSE71585_Clustering_Results.csv"), help="GEO clustering CSV (reference=geo)"
    ),
    patchseq_features: str = typer.Option(..., help="features of the Cadwell-feature model"),
    cv_r2_threshold: float = typer.Option(0.3, help="genes with cv_r2 above: 'good in CV'"),
    cv_r2_column: str = typer.Option("cv_r2", help="per-gene CV column of genes.parquet"),
    n_neighbors: int = typer.Option(15, help="k for mixing, label transfer and UMAP"),
    n_pcs: int = typer.Option(10, help="components of the joint space"),
    max_cells: int = typer.Option(400, help="per-source subsample for embeddings (0 = all)"),
    tsne_max_iter: int = typer.Option(500, help="t-SNE iterations"),
    n_jobs: int = typer.Option(2, help="2 = UMAPs in a worker process beside the t-SNEs"),
    min_group_cells: int = typer.Option(3, help="smallest group in type agreement"),
    seed: int = typer.Option(0, help="seed for PCA, t-SNE, UMAP and subsampling"),
    penalty: str = typer.Option("lasso", help="as train.penalty"),
    alpha: str = typer.Option("auto", help="as train.alpha"),
    l1_ratio: float = typer.Option(0.5, help="as train.l1_ratio"),
    alpha_min: float = typer.Option(1e-3, help="as train.alpha_min"),
    alpha_max: float = typer.Option(10.0, help="as train.alpha_max"),
    n_alphas: int = typer.Option(30, help="as train.n_alphas"),
    inner_folds: int = typer.Option(5, help="as train.inner_folds"),
    sample_weight: str = typer.Option("none", help="as train.sample_weight: none | cells"),
    out_dir: Path = typer.Option(paths.VALIDATION, help="tables folder"),
    plots_dir: Path = typer.Option(paths.PLOTS / "validate", help="figures folder"),
    metrics: Path = typer.Option(paths.METRICS / "validate.json", help="metrics JSON"),
) -> None:
    """Embeddings (PNG), type agreement, label transfer, mixing and Patch-seq agreement."""
    t_start = time.perf_counter()
    runner = EmbeddingRunner(n_jobs).start()  # compiles UMAP in a worker meanwhile
    try:
        if reference not in ("rda", "geo"):
            raise InputError(f"--reference must be 'rda' or 'geo', not {reference!r}")
        feats_ps = _split_list(patchseq_features)

        # ---- inputs ------------------------------------------------------------------------
        genes_tab = pd.read_parquet(model_dir / "genes.parquet")
        if cv_r2_column not in genes_tab.columns:
            raise InputError(f"{model_dir / 'genes.parquet'}: missing column '{cv_r2_column}'")
        pred, pmeta = load_predictions(predictions, genes_tab.index)
        if "species" in pmeta.columns:  # Tasic 2016 and Cadwell are mouse
            mouse = (pmeta["species"].fillna("mouse") == "mouse").to_numpy()
            pred, pmeta = pred[mouse], pmeta[mouse]
        cell_tab = pd.read_parquet(cells)
        cell_tab.index = cell_tab.index.astype(str)
        palette = read_palette(paths.DRIVER_PALETTE)
        if reference == "rda":
            meas = read_tasic_rda(paths.TASIC_EXPR, paths.TASIC_META)
        else:
            meas = read_tasic_geo(geo_counts, geo_clustering, genes=list(pred.columns))
        log.info(
            "predicted: %d cells x %d genes; measured: %d cells x %d genes",
            *pred.shape,
            *meas.expr.shape,
        )

        pmeta = pmeta.copy()
        pmeta["group"] = [
            cre_group(c, lay, d)
            for c, lay, d in zip(
                pmeta["cre_line"], pmeta.get("layer"), pmeta.get("dendrite_type"), strict=True
            )
        ]
        pmeta["broad"] = [
            exc_inh_truth(c, d)
            for c, d in zip(pmeta["cre_line"], pmeta.get("dendrite_type"), strict=True)
        ]
        cre = pmeta["cre_line"].astype(str)
        n_cre_unpal = int((~cre.drop_duplicates().isin(list(palette))).sum())
        n_cells_unpal = int((~cre.isin(list(palette))).sum())

        shared = pred.columns.intersection(meas.expr.columns)
        if len(shared) < 10:
            raise InputError(
                f"{predictions}: only {len(shared)} genes shared with the measured reference"
            )
        log.info("%d genes shared between predicted and measured", len(shared))

        # ---- numbers: type agreement on all predicted/measured cells ----------------------------
        # the named groups only: "other" (pan-GABAergic lines, Sncg/Igtp types) matches nothing
        named = lambda g: g[~g.isin(["other", "Non-neuronal"])]  # noqa: E731
        ta_args = (pred[shared], named(pmeta["group"]), meas.expr[shared],
                   named(meas.meta["group"]))  # fmt: skip
        corr, agree = type_agreement(*ta_args, min_cells=min_group_cells)
        _, agree_raw = type_agreement(*ta_args, min_cells=min_group_cells, centre_genes=False)
        # within a class: the Exc/Inh split dominates the numbers above; can predictions
        # tell interneuron subclasses (or excitatory layers) apart?
        within = {}
        for cls, keep in (("inh", lambda g: ~g.str.startswith("Exc")),
                          ("exc", lambda g: g.str.startswith("Exc"))):  # fmt: skip
            sub = lambda g, keep=keep: named(g)[keep(named(g).astype(str))]  # noqa: E731
            _, w = type_agreement(pred[shared], sub(pmeta["group"]), meas.expr[shared],
                                  sub(meas.meta["group"]), min_cells=min_group_cells)  # fmt: skip
            within[cls] = {k: w[k] for k in ("matched_r", "matched_r_median",
                                             "unmatched_r_median", "top1")}  # fmt: skip

        # ---- joint space (all cells), mixing and label transfer before/after correction ---------
        X = np.vstack([pred[shared].to_numpy(), meas.expr[shared].to_numpy()])
        source = np.array(["predicted"] * len(pred) + ["measured"] * len(meas.expr))
        broad = np.concatenate(
            [pmeta["broad"].to_numpy(dtype=str), meas.meta["broad"].to_numpy(dtype=str)]
        )
        joint, mixing, transfer = {}, {}, {}
        for corr_name in ("zscore", "pc_align"):
            joint[corr_name] = joint_space(X, source, corr_name, n_components=n_pcs, seed=seed)
            frac, expected = mixing_fraction(
                joint[corr_name], source, "predicted", "measured", k=n_neighbors
            )
            mixing[corr_name] = {
                "mean_fraction_measured": float(frac.mean()),
                "median_fraction_measured": float(np.median(frac)),
                "frac_cells_with_no_measured_neighbour": float((frac == 0).mean()),
                "expected_if_mixed": expected,
                "n_dims": int(joint[corr_name].shape[1]),
            }
            transfer[corr_name] = label_transfer(joint[corr_name], source, broad, k=n_neighbors)
            log.info(
                "%s: mixing %.3f (expected %.3f), Exc/Inh transfer accuracy %.3f",
                corr_name,
                frac.mean(),
                expected,
                transfer[corr_name]["accuracy"],
            )

        # ---- Patch-seq (Cadwell 2016) --------------------------------------------------------
        ps = read_cadwell(
            paths.CADWELL_EXPR, paths.CADWELL_META, paths.CADWELL_EPHYS, paths.CADWELL_SDRF
        )
        tf = pd.read_parquet(prepared / "train_features.parquet")
        tt = pd.read_parquet(prepared / "train_targets.parquet")
        weights = None
        if sample_weight == "cells":
            weights = pd.read_parquet(prepared / "train_types.parquet").loc[tf.index, "weight"]
            weights = weights.to_numpy(dtype=float)
        elif sample_weight != "none":
            raise InputError(f"--sample-weight must be 'none' or 'cells', not {sample_weight!r}")
        try:
            alpha_val: str | float = alpha if alpha == "auto" else float(alpha)
        except ValueError:
            raise InputError(f"--alpha must be a number or 'auto', not {alpha!r}") from None
        if n_jobs > 1:  # one core is compiling UMAP in the worker: do not fight over it
            numba.set_num_threads(1)
        model = fit_feature_subset_model(
            tf, tt, feats_ps, penalty=penalty, alpha=alpha_val, l1_ratio=l1_ratio,
            alpha_min=alpha_min, alpha_max=alpha_max, n_alphas=n_alphas, inner_folds=inner_folds,
            seed=seed, sample_weight=weights,
        )  # fmt: skip
        complete = ps.features[feats_ps].notna().all(axis=1)
        ps_feats = ps.features.loc[complete, feats_ps]
        ps_pred = pd.DataFrame(
            model.predict(ps_feats.to_numpy()), index=ps_feats.index, columns=tt.index
        )
        baseline = tt[tf.index].mean(axis=1)  # training mean profile (each type counts once)
        good = genes_tab.index[genes_tab[cv_r2_column] > cv_r2_threshold].intersection(tt.index)
        per_gene, per_cell, ps_summary = patchseq_agreement(
            ps_pred, ps.expr.loc[ps_feats.index], baseline, list(good)
        )
        ps_summary["n_cells_missing_feature"] = int((~complete).sum())
        ps_summary["n_genes_cv_good_in_store"] = int(len(good))
        ps_summary["features"] = feats_ps
        ps_summary["frac_cells_outside_training_range"] = outside_training_range(
            ps_feats, tf[feats_ps]
        )
        per_cell["major_type"] = ps.meta.loc[per_cell.index, "major_type"]
        for t in sorted(per_cell["major_type"].unique()):
            sub = per_cell[per_cell["major_type"] == t]
            ps_summary["cells"][f"median_r_deviation_{t}"] = float(sub["r_dev_model"].median())
        # which training types the Cadwell cells' predictions resemble most (nearest type mean)
        tmeans = tt[tf.index].T
        nearest = _nearest_type(ps_pred, tmeans)
        ps_summary["nearest_training_type_counts"] = nearest.value_counts().to_dict()
        per_cell["nearest_training_type"] = nearest

        # ---- embeddings (pictures) -----------------------------------------------------------
        sub_p = _subsample(pred.index, max_cells, seed)
        sub_m = _subsample(meas.expr.index, max_cells, seed + 1)
        n_sub = {"predicted": len(sub_p), "measured": len(sub_m)}
        pm = pmeta.loc[sub_p]
        mm = meas.meta.loc[sub_m]
        cre_cols = _coloured_by(pm["cre_line"], palette)
        grp_all = pd.concat([pm["group"], mm["group"]])
        grp_cols = _coloured_by(grp_all)
        ei = lambda s: s.replace("", "unknown")  # noqa: E731

        feat_cols = [c for c in tf.columns if c in cell_tab.columns]
        ephys = cell_tab.loc[sub_p, feat_cols]
        ephys_ok = ephys.notna().all(axis=1).to_numpy()
        sub_src = np.array(["predicted"] * len(sub_p) + ["measured"] * len(sub_m))
        Xj = np.vstack(
            [pred.loc[sub_p, shared].to_numpy(), meas.expr.loc[sub_m, shared].to_numpy()]
        )
        spaces = {
            "ephys": zscore_columns(ephys.to_numpy()[ephys_ok]),
            "predicted": zscore_columns(pred.loc[sub_p].to_numpy()),
            "measured": zscore_columns(meas.expr.loc[sub_m].to_numpy()),
            "joint_zscore": joint_space(Xj, sub_src, "zscore", n_components=n_pcs, seed=seed),
            "joint_pc_align": joint_space(Xj, sub_src, "pc_align", n_components=n_pcs, seed=seed),
        }
        log.info("embedding %d spaces with t-SNE and UMAP", len(spaces))
        coords = runner.run(spaces, seed=seed, n_neighbors=n_neighbors, tsne_max_iter=tsne_max_iter)
        runner.close()

        figs = {}
        metas = {"ephys": pm[ephys_ok], "predicted": pm, "measured": mm}
        for name, meta in metas.items():
            col_cre = ("cre line", meta["cre_line"], cre_cols)
            if not meta["cre_line"].notna().any():  # the 170-gene RData has no cre line per cell
                col_cre = ("transcriptomic type", meta["type"], _coloured_by(meta["type"]))
            Xs = spaces[name]
            figs[f"embed_{name}"] = embedding_figure(
                coords[name],
                [
                    col_cre,
                    ("group", meta["group"], grp_cols),
                    ("Exc/Inh", ei(meta["broad"].astype(str)), EXC_INH_COLOURS),
                ],
                f"{name} ({len(Xs)} cells, {Xs.shape[1]} "
                f"{'features' if name == 'ephys' else 'genes'}, z-scored)",
            )
        cre_j = pd.concat(
            [
                pm["cre_line"].astype(str),
                mm["cre_line"].astype("string").fillna("measured (cre unknown)"),
            ]
        )
        cre_cols_j = {**cre_cols, "measured (cre unknown)": "#DDDDDD"}
        broad_j = ei(pd.concat([pm["broad"], mm["broad"]]).astype(str))
        markers = np.array([SOURCE_MARKERS[s] for s in sub_src])
        titles = {
            "zscore": "z-scored per source (as the original)",
            "pc_align": "corrected: projected on predicted PCs, standardised per source",
        }
        for corr_name in ("zscore", "pc_align"):
            mix = mixing[corr_name]
            figs[f"joint_{corr_name}"] = embedding_figure(
                coords[f"joint_{corr_name}"],
                [
                    ("cre line (predicted)", cre_j, cre_cols_j),
                    ("group", grp_all, grp_cols),
                    ("Exc/Inh", broad_j, EXC_INH_COLOURS),
                    ("source", pd.Series(sub_src), SOURCE_COLOURS),
                ],
                f"predicted + measured on {len(shared)} shared genes, {titles[corr_name]} "
                f"(o predicted, ^ measured; mixing {mix['mean_fraction_measured']:.2f}"
                f" vs {mix['expected_if_mixed']:.2f} if mixed)",
                markers=markers,
            )
        figs["type_agreement"] = type_agreement_figure(
            corr,
            f"type agreement over {agree['n_genes']} shared genes: matched median r "
            f"{agree['matched_r_median']:.2f}, unmatched {agree['unmatched_r_median']:.2f}",
        )
        figs["patchseq"] = patchseq_figure(
            per_gene,
            per_cell,
            per_cell["major_type"],
            f"Cadwell 2016 Patch-seq ({ps_summary['n_cells']} cells), model on {len(feats_ps)} "
            "features vs training-mean baseline",
        )

        # ---- outputs -------------------------------------------------------------------------
        write_parquet(corr, out_dir / "type_agreement.parquet")
        write_parquet(per_gene, out_dir / "patchseq_genes.parquet")
        write_parquet(per_cell, out_dir / "patchseq_cells.parquet")
        off = corr.where(~np.eye(len(corr), dtype=bool))
        ta_long = pd.DataFrame({"group": corr.index, "matched_r": np.diag(corr.to_numpy()),
                                "best_unmatched_r": off.max(axis=1).to_numpy()})  # fmt: skip
        write_csv(ta_long, plots_dir / "type_agreement.csv", index=False)
        write_csv(
            per_gene[per_gene["cv_good"]].reset_index(),
            plots_dir / "patchseq_good_genes.csv",
            index=False,
        )
        for name, fig in figs.items():
            save_figure(fig, plots_dir / f"{name}.png")
        write_json(
            {
                "reference": reference,
                "n_predicted_cells": int(len(pred)),
                "n_measured_cells": int(len(meas.expr)),
                "n_shared_genes": int(len(shared)),
                "embedding_subsample": n_sub,
                "palette": {
                    "n_cre_lines_not_in_palette": n_cre_unpal,
                    "n_cells_grey": n_cells_unpal,
                },
                "type_agreement": {k: v for k, v in agree.items() if k != "groups"},
                "type_agreement_within_class": within,
                "type_agreement_uncentred": {
                    k: agree_raw[k] for k in ("matched_r_median", "unmatched_r_median", "top1")
                },
                "mixing": mixing,
                "label_transfer": transfer,
                "patchseq": ps_summary,
            },
            metrics,
        )
        log.info("validate done in %.1f s", time.perf_counter() - t_start)

    finally:
        runner.close()


def _nearest_type(pred: pd.DataFrame, type_means: pd.DataFrame) -> pd.Series:
    """For each row of ``pred``, the training type whose mean profile correlates best."""
    P = pred[type_means.columns].to_numpy()
    T = type_means.to_numpy()
    P = P - P.mean(axis=1, keepdims=True)
    T = T - T.mean(axis=1, keepdims=True)
    r = (P @ T.T) / np.outer(np.linalg.norm(P, axis=1), np.linalg.norm(T, axis=1))
    return pd.Series(type_means.index[np.argmax(r, axis=1)], index=pred.index, name="type")


if __name__ == "__main__":
    app()
