"""The model store: every gene's linear model, in a safe, versioned, pickle-free format.

Layout of a store directory::

    model.json      schema version, feature names/order, scaler statistics, training
                    feature range and means, penalty, params and input hashes
    genes.parquet   one row per gene: intercept, alpha, n_nonzero, and any per-gene
                    evaluation columns (cv_r2, cv_rmse, ...)
    coef.parquet    genes x features coefficients in ORIGINAL feature units

Predicted log2 expression for a cell with features ``x`` (original units) is
``coef @ x + intercept``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.io import write_json, write_parquet

SCHEMA_VERSION = 1


@dataclass
class ModelStore:
    """A fitted per-gene linear model set.

    Attributes
    ----------
    features : list of str
        Feature names, in the column order of ``coef``.
    coef : pandas.DataFrame
        Genes x features, original feature units.
    genes : pandas.DataFrame
        Indexed by gene (same order as ``coef``); must hold ``intercept`` and ``alpha``.
    scaler_mean, scaler_scale : numpy.ndarray
        Standardisation statistics of the final fit (per feature).
    feature_min, feature_max : numpy.ndarray
        Range of each feature over the training rows (for extrapolation flags).
    penalty : str
    l1_ratio : float
    provenance : dict
        Params and input hashes the store came from.
    """

    features: list[str]
    coef: pd.DataFrame
    genes: pd.DataFrame
    scaler_mean: np.ndarray
    scaler_scale: np.ndarray
    feature_min: np.ndarray
    feature_max: np.ndarray
    penalty: str
    l1_ratio: float = 1.0
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.features = [str(f) for f in self.features]
        self.scaler_mean = np.asarray(self.scaler_mean, dtype=float)
        self.scaler_scale = np.asarray(self.scaler_scale, dtype=float)
        self.feature_min = np.asarray(self.feature_min, dtype=float)
        self.feature_max = np.asarray(self.feature_max, dtype=float)
        self.validate()

    @property
    def intercept(self) -> np.ndarray:
        return self.genes["intercept"].to_numpy(dtype=float)

    @property
    def gene_names(self) -> list[str]:
        return [str(g) for g in self.coef.index]

    def validate(self, where: str = "model store") -> None:
        """Raise :class:`InputError` if shapes or names are inconsistent."""
        p = len(self.features)
        if list(self.coef.columns) != self.features:
            raise InputError(f"{where}: coef columns do not match the feature list {self.features}")
        for name in ("scaler_mean", "scaler_scale", "feature_min", "feature_max"):
            if getattr(self, name).shape != (p,):
                raise InputError(
                    f"{where}: {name} has shape {getattr(self, name).shape}, expected ({p},)"
                )
        if not self.coef.index.equals(self.genes.index):
            raise InputError(f"{where}: genes table and coef rows name different genes")
        for col in ("intercept", "alpha"):
            if col not in self.genes.columns:
                raise InputError(f"{where}: genes table lacks column '{col}'")
        if self.coef.index.has_duplicates:
            dup = self.coef.index[self.coef.index.duplicated()][0]
            raise InputError(f"{where}: duplicate gene '{dup}'")

    def prediction_terms(self, genes=None, dtype=np.float64):
        """``(coef, offset, centre)`` of :func:`linear_predict` for the rows ``genes``.

        ``genes`` is an array of row indices (default: all genes). The coefficients are
        centred on the training means (``offset = intercept + coef @ centre``) so that the
        products stay small, which keeps float32 results within ~1e-5 log2 units of float64.
        """
        coef64 = self.coef.to_numpy(dtype=float)
        intercept = self.intercept
        if genes is not None:
            coef64, intercept = coef64[genes], intercept[genes]
        centre = self.scaler_mean
        coef = np.ascontiguousarray(coef64, dtype=dtype)
        offset = (intercept + coef64 @ centre).astype(dtype)[:, None]
        return coef, offset, centre

    def predict(self, X, genes=None, dtype=np.float64) -> np.ndarray:
        """Predicted log2 expression, cells x genes, for features in original units.

        Parameters
        ----------
        X : array (cells x features, in ``self.features`` order) or DataFrame holding (at
            least) the feature columns.
        genes : array of int, optional
            Row indices of the genes to predict (default: all).
        dtype : numpy dtype
            float64 (default) or float32 (what the predictions files store).
        """
        if isinstance(X, pd.DataFrame):
            X = X[self.features].to_numpy(dtype=float)
        X = np.asarray(X, dtype=float)
        return linear_predict(*self.prediction_terms(genes, dtype), X).T


def linear_predict(coef, offset, centre, X) -> np.ndarray:
    """Genes x cells block ``coef @ (X - centre).T + offset`` in ``coef``'s dtype.

    The one place where predictions are computed (:meth:`ModelStore.predict` and the
    chunked writers of :mod:`ephys2expr.predict` call it). Genes-major, so that each gene's
    values are contiguous as a columnar writer wants. BLAS runs on one thread: OpenBLAS's
    float32 product rounds differently with different thread counts (measured: ~1 ulp in 7 %
    of values), and output bytes must not depend on how many threads a process or a Dask
    worker has. The product is bound by memory traffic, so one thread costs little.
    """
    from threadpoolctl import threadpool_limits

    xt = np.ascontiguousarray((X - centre).T, dtype=coef.dtype)
    out = np.empty((coef.shape[0], xt.shape[1]), dtype=coef.dtype)
    with threadpool_limits(limits=1, user_api="blas"):
        np.matmul(coef, xt, out=out)
    out += offset
    return out


def store_from_estimator(
    estimator, features: pd.DataFrame, genes: pd.Index, per_gene: pd.DataFrame | None = None,
    provenance: dict | None = None,
) -> ModelStore:  # fmt: skip
    """The model store of a fitted :class:`~ephys2expr.model.estimator.MultiGeneElasticNet`.

    Parameters
    ----------
    estimator : MultiGeneElasticNet
        Fitted on ``features`` (rows = training cell types or cells).
    features : DataFrame
        The training design matrix, rows x features, original units (its columns name the
        features, its index the training rows).
    genes : Index
        Gene names, in the estimator's target order.
    per_gene : DataFrame, optional
        Per-gene evaluation columns (cv_r2, baselines, ...) indexed by gene; stored after
        ``intercept``.
    provenance : dict, optional
        Params and input hashes; the training rows, feature means and the alpha path are
        added here.
    """
    from ephys2expr import __version__

    X = features.to_numpy(dtype=float)
    table = per_gene.copy() if per_gene is not None else pd.DataFrame(index=genes.copy())
    table.insert(0, "intercept", estimator.intercept_)
    if "alpha" not in table.columns:
        table["alpha"] = estimator.alpha_
    coef = pd.DataFrame(estimator.coef_, index=genes.copy(), columns=list(features.columns))
    auto = isinstance(estimator.alpha, str)
    info = dict(provenance or {})
    info.update({
        "cell_types": list(features.index),
        "feature_mean": X.mean(axis=0).tolist(),
        "alpha_path": estimator.alphas_.tolist() if auto else None,
        "code": f"ephys2expr {__version__}",
    })  # fmt: skip
    return ModelStore(
        features=list(features.columns),
        coef=coef,
        genes=table,
        scaler_mean=estimator.mean_,
        scaler_scale=estimator.scale_,
        feature_min=X.min(axis=0),
        feature_max=X.max(axis=0),
        penalty=estimator.penalty,
        l1_ratio=estimator._l1_ratio(),
        provenance=info,
    )


def save_model_store(store: ModelStore, directory: str | os.PathLike) -> None:
    """Write a store directory (each file atomically)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    store.validate()
    meta = {
        "schema_version": SCHEMA_VERSION,
        "features": store.features,
        "n_genes": int(len(store.coef)),
        "penalty": store.penalty,
        "l1_ratio": float(store.l1_ratio),
        "scaler_mean": store.scaler_mean.tolist(),
        "scaler_scale": store.scaler_scale.tolist(),
        "feature_min": store.feature_min.tolist(),
        "feature_max": store.feature_max.tolist(),
        "provenance": store.provenance,
    }
    coef = store.coef.copy()
    coef.index.name = "gene"
    genes = store.genes.copy()
    genes.index.name = "gene"
    write_parquet(coef, directory / "coef.parquet")
    write_parquet(genes, directory / "genes.parquet")
    write_json(meta, directory / "model.json")  # written last: its presence marks a full store


def load_model_store(directory: str | os.PathLike) -> ModelStore:
    """Load and check a store directory; a wrong schema or shape is an :class:`InputError`."""
    directory = Path(directory)
    meta_path = directory / "model.json"
    if not meta_path.is_file():
        raise InputError(f"{directory}: not a model store (no model.json)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{meta_path}: unreadable JSON ({exc.msg})") from None
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InputError(
            f"{meta_path}: schema_version {version!r}, this code reads {SCHEMA_VERSION}"
        )
    missing = [
        k
        for k in (
            "features",
            "scaler_mean",
            "scaler_scale",
            "feature_min",
            "feature_max",
            "penalty",
        )
        if k not in meta
    ]
    if missing:
        raise InputError(f"{meta_path}: missing keys {missing}")
    try:
        coef = pd.read_parquet(directory / "coef.parquet")
        genes = pd.read_parquet(directory / "genes.parquet")
    except (OSError, ValueError) as exc:
        raise InputError(f"{directory}: unreadable store table ({exc})") from None
    if meta.get("n_genes") is not None and meta["n_genes"] != len(coef):
        raise InputError(f"{meta_path}: n_genes {meta['n_genes']} but coef has {len(coef)} rows")
    return ModelStore(
        features=meta["features"],
        coef=coef,
        genes=genes,
        scaler_mean=meta["scaler_mean"],
        scaler_scale=meta["scaler_scale"],
        feature_min=meta["feature_min"],
        feature_max=meta["feature_max"],
        penalty=meta["penalty"],
        l1_ratio=meta.get("l1_ratio", 1.0),
        provenance=meta.get("provenance", {}),
    )


__all__ = [
    "ModelStore",
    "SCHEMA_VERSION",
    "linear_predict",
    "load_model_store",
    "save_model_store",
    "store_from_estimator",
]
