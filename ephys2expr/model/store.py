"""The model store: every gene's linear model, in a safe, versioned, pickle-free format.

Layout of a store directory::

    model.json      schema version, feature names/order, scaler statistics, training
                    feature range and means, penalty, params and input hashes
    genes.parquet   one row per gene: intercept, alpha, n_nonzero, and any per-gene
                    evaluation columns (cv_r2, cv_rmse, ...)
    coef.parquet    genes x features coefficients in ORIGINAL feature units

Predicted log2 expression for a cell with features ``x`` (original units) is
``coef @ x + intercept``.

**Feature sets** (schema 3). A store holds one model per feature set, all for the same
genes and training rows: the *primary* model uses every feature of the store, each other
set leaves some out (a cell lacking ``tau`` is predicted by a set without it). Both tables
are then indexed by ``(feature_set, gene)``; a set's coefficients of the features it leaves
out are stored as exact zeros. In memory the primary model is the :class:`ModelStore`
itself and the others are in :attr:`ModelStore.other_sets`; :attr:`ModelStore.feature_sets`
lists all, primary first.

The folder is written and read as one unit and checked on load (``model.json`` holds the
md5 of both tables); see :mod:`ephys2expr.model.store_format`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.model.store_format import (
    SCHEMA_VERSION,
    check_replaceable,
    join_set_tables,
    mismatch_note,
    read_store,
    split_feature_sets,
    write_store,
)


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
    feature_set : str
        Name of this model's feature set.
    other_sets : dict of str to ModelStore
        The models of the store's other feature sets (same genes, fewer features), by name;
        empty in those models themselves.
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
    feature_set: str = "full"
    other_sets: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.features = [str(f) for f in self.features]
        for name in ("scaler_mean", "scaler_scale", "feature_min", "feature_max"):
            try:
                setattr(self, name, np.asarray(getattr(self, name), dtype=float))
            except (TypeError, ValueError):
                raise InputError(f"model store: {name} must hold numbers") from None
        self.validate()

    @property
    def intercept(self) -> np.ndarray:
        return self.genes["intercept"].to_numpy(dtype=float)

    @property
    def gene_names(self) -> list[str]:
        return [str(g) for g in self.coef.index]

    @property
    def feature_sets(self) -> dict[str, ModelStore]:
        """Every feature set's model by name: this (primary) model first, then the others."""
        return {self.feature_set: self, **self.other_sets}

    def model(self, name: str) -> ModelStore:
        """The model of feature set ``name`` (an error lists the sets the store offers)."""
        sets = self.feature_sets
        if name not in sets:
            raise InputError(
                f"model store: no feature set {name!r} (the store offers {describe_sets(self)})"
            )
        return sets[name]

    def validate(self, where: str = "model store") -> None:
        """Raise :class:`InputError` if shapes, names or values are inconsistent.

        Everything a prediction uses must be finite (a NaN coefficient or scaler mean
        would make every prediction NaN), scales positive, and ``feature_min <=
        feature_max`` (the extrapolation flags rely on them).
        """
        p = len(self.features)
        if list(self.coef.columns) != self.features:
            raise InputError(f"{where}: coef columns do not match the feature list {self.features}")
        for name in ("scaler_mean", "scaler_scale", "feature_min", "feature_max"):
            values = getattr(self, name)
            if values.shape != (p,):
                raise InputError(f"{where}: {name} has shape {values.shape}, expected ({p},)")
            _check_finite(values, name, self.features, where)
        if np.any(self.scaler_scale <= 0):
            bad = self.features[int(np.argmax(self.scaler_scale <= 0))]
            raise InputError(f"{where}: scaler_scale of '{bad}' is not positive")
        if np.any(self.feature_min > self.feature_max):
            bad = self.features[int(np.argmax(self.feature_min > self.feature_max))]
            raise InputError(f"{where}: feature_min of '{bad}' is above its feature_max")
        if not (isinstance(self.l1_ratio, int | float) and 0.0 <= self.l1_ratio <= 1.0):
            raise InputError(f"{where}: l1_ratio {self.l1_ratio!r} is not in [0, 1]")
        if not self.coef.index.equals(self.genes.index):
            raise InputError(f"{where}: genes table and coef rows name different genes")
        if self.coef.index.has_duplicates:
            dup = self.coef.index[self.coef.index.duplicated()][0]
            raise InputError(f"{where}: duplicate gene '{dup}'")
        for col in ("intercept", "alpha"):
            if col not in self.genes.columns:
                raise InputError(f"{where}: genes table lacks column '{col}'")
        for label, frame, cols in (("coef", self.coef, self.features),
                                   ("genes", self.genes, ["intercept", "alpha"])):  # fmt: skip
            for col in cols:
                values = frame[col]
                if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
                    raise InputError(
                        f"{where}: {label} column '{col}' is {values.dtype}, not numbers"
                    )
                _check_finite(values.to_numpy(dtype=float), f"{label} column '{col}'", frame.index,
                              where)  # fmt: skip
        if np.any(self.genes["alpha"].to_numpy(dtype=float) < 0):
            raise InputError(f"{where}: genes column 'alpha' has a negative value")
        self._validate_sets(where)

    def _validate_sets(self, where: str) -> None:
        """The other sets: fewer features of this model's, in its order; same genes."""
        for name, sub in self.other_sets.items():
            at = f"{where}: feature set {name!r}"
            if not isinstance(sub, ModelStore) or sub.other_sets:
                raise InputError(f"{at} must be a single model")
            if name == self.feature_set or sub.feature_set != name:
                raise InputError(f"{at} is named {sub.feature_set!r} or repeats the primary name")
            if [f for f in self.features if f in sub.features] != sub.features or len(
                sub.features
            ) >= len(self.features):
                raise InputError(
                    f"{at}: features {sub.features} are not a subset of {self.features} "
                    "in that order"
                )
            if not sub.coef.index.equals(self.coef.index):
                raise InputError(f"{at} names other genes than the primary set")
            if (sub.penalty, sub.l1_ratio) != (self.penalty, self.l1_ratio):
                raise InputError(f"{at} has another penalty than the primary set")

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


def describe_sets(store: ModelStore) -> str:
    """``name (features), ...`` of every feature set of ``store`` (for error messages)."""
    return "; ".join(f"{n} ({', '.join(m.features)})" for n, m in store.feature_sets.items())


def store_from_estimator(
    estimator, features: pd.DataFrame, genes: pd.Index, per_gene: pd.DataFrame | None = None,
    provenance: dict | None = None, feature_set: str = "full",
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
    feature_set : str
        Name of the feature set (the columns of ``features``); stores of several sets are
        joined by :func:`join_feature_sets`.
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
        feature_set=feature_set,
    )


def join_feature_sets(models: list[ModelStore]) -> ModelStore:
    """One store of several feature sets' models (same genes and rows), the first primary.

    The primary model must use every feature of the others (the full set); its provenance
    is the store's.
    """
    primary = models[0]
    others = {m.feature_set: m for m in models[1:]}
    if len(others) != len(models) - 1 or primary.feature_set in others:
        names = [m.feature_set for m in models]
        raise InputError(f"model store: feature set names repeat: {names}")
    # the primary's provenance covers every set
    others = {n: dataclasses.replace(m, provenance={}) for n, m in others.items()}
    return dataclasses.replace(primary, other_sets=others)


def save_model_store(store: ModelStore, directory: str | os.PathLike) -> None:
    """Write a store folder as one unit (:func:`~ephys2expr.model.store_format.write_store`).

    Same store, same bytes: ``model.json`` records the tables' md5, which are themselves
    deterministic, so a rerun leaves every file (and ``git status``) unchanged. Both tables
    are indexed by ``(feature_set, gene)``; a set's coefficients of the features it leaves
    out are written as zeros.
    """
    store.validate()
    meta = {
        "features": store.features,
        "n_genes": int(len(store.coef)),
        "penalty": store.penalty,
        "l1_ratio": float(store.l1_ratio),
        "scaler_mean": store.scaler_mean.tolist(),
        "scaler_scale": store.scaler_scale.tolist(),
        "feature_min": store.feature_min.tolist(),
        "feature_max": store.feature_max.tolist(),
        # the primary's scaler is the one above; each other set has its own
        "feature_sets": [{"name": store.feature_set, "features": store.features}]
        + [
            {
                "name": name,
                "features": m.features,
                "scaler_mean": m.scaler_mean.tolist(),
                "scaler_scale": m.scaler_scale.tolist(),
            }
            for name, m in store.other_sets.items()
        ],  # fmt: skip
        "provenance": store.provenance,
    }
    sets = store.feature_sets
    tables = join_set_tables({n: (m.coef, m.genes) for n, m in sets.items()}, store.features)
    write_store(directory, meta, tables)


def check_store_destination(directory: str | os.PathLike) -> None:
    """Raise :class:`InputError` now if :func:`save_model_store` would refuse ``directory``
    (a file, or a folder holding other files): checked before training, not after."""
    check_replaceable(directory)


def load_model_store(directory: str | os.PathLike) -> ModelStore:
    """Load and check a store folder; any problem is a one-line :class:`InputError`
    naming the folder (or its ``model.json``). Stores of schema 2 (one feature set) load as
    a store of their one set."""
    where = os.fspath(directory)
    meta, tables, mismatched = read_store(directory)
    note = f"; {mismatch_note(mismatched)}" if mismatched else ""
    coef, genes = tables["coef.parquet"], tables["genes.parquet"]
    try:
        models = []
        for entry, set_coef, set_genes in split_feature_sets(meta, coef, genes):
            if meta["n_genes"] != len(set_coef):
                in_set = f" in feature set {entry['name']!r}" if models else ""
                raise InputError(
                    f"model store: n_genes {meta['n_genes']} but coef has {len(set_coef)} "
                    f"rows{in_set}"
                )
            idx = [meta["features"].index(f) for f in entry["features"]]
            models.append(ModelStore(
                features=entry["features"],
                coef=set_coef,
                genes=set_genes,
                scaler_mean=entry["scaler_mean"],
                scaler_scale=entry["scaler_scale"],
                feature_min=[meta["feature_min"][i] for i in idx],
                feature_max=[meta["feature_max"][i] for i in idx],
                penalty=meta["penalty"],
                l1_ratio=meta["l1_ratio"],
                provenance=meta["provenance"],  # kept by the primary only (join_feature_sets)
                feature_set=entry["name"],
            ))  # fmt: skip
        store = join_feature_sets(models)
    except InputError as exc:  # name the folder, and say if the files do not belong together
        raise InputError(f"{where}: {str(exc).removeprefix('model store: ')}{note}") from None
    if mismatched:
        raise InputError(f"{where}: {mismatch_note(mismatched)}")
    return store


def _check_finite(values: np.ndarray, what: str, labels, where: str) -> None:
    """Raise naming the first non-finite entry of ``values`` (labelled by ``labels``)."""
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"{where}: {what} is {values[i]} at '{labels[i]}' (must be finite)")


__all__ = [
    "ModelStore",
    "describe_sets",
    "join_feature_sets",
    "SCHEMA_VERSION",
    "check_store_destination",
    "linear_predict",
    "load_model_store",
    "save_model_store",
    "store_from_estimator",
]
