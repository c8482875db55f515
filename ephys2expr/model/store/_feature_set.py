"""One feature set of a model store: every gene's linear model over the same features.

A :class:`FeatureSet` owns what differs from set to set (features, coefficients, genes table
with its per-gene quality, scaler statistics, training range, intervals) and the behaviour
that goes with them: :meth:`FeatureSet.predict` (through :func:`linear_predict`, the one
prediction formula), its identity probabilities and its check. What all sets share (the
training rows, provenance, identity part, training targets) is the
:class:`~ephys2expr.model.store._memory.ModelStore`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.model.intervals import GeneIntervals
from ephys2expr.model.ood import bound_features
from ephys2expr.model.store._identity import StoreIdentity, apply_mixture, mixture_terms

# What a log2(x + 1) expression of a CPM or TPM can be: never below 0, and no gene has more
# than 10^6 per million. Every prediction is clipped to it where it is made (the
# estimator's out-of-fold predictions in CV and the predictions of new cells alike), so the
# CV quality a store reports is that of what is written; a linear model extrapolated from
# cells at the edges of the plausible feature ranges predicted up to 47,083 log2 units.
EXPRESSION_RANGE: tuple[float, float] = (0.0, float(np.log2(1e6 + 1)))


@dataclass
class FeatureSet:
    """One feature set's fitted per-gene linear models.

    Attributes
    ----------
    name : str
        The feature set's name (``full``, ``no_tau``, ``cadwell``, ...).
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
    intervals : GeneIntervals or None
        This set's prediction intervals (schema 6, ``intervals.parquet``:
        :mod:`ephys2expr.model.intervals`); None in stores of schema 5 and older.
    identity : StoreIdentity or None
        The store's identity part (one classifier per set; the genes table's
        ``model_kind`` says which kind predicts each gene), shared by every set of a store:
        the :class:`~ephys2expr.model.store._memory.ModelStore` gives it to its sets.
    """

    name: str
    features: list[str]
    coef: pd.DataFrame
    genes: pd.DataFrame
    scaler_mean: np.ndarray
    scaler_scale: np.ndarray
    feature_min: np.ndarray
    feature_max: np.ndarray
    penalty: str
    l1_ratio: float
    intervals: GeneIntervals | None = None
    identity: StoreIdentity | None = None

    def __post_init__(self) -> None:
        self.features = [str(f) for f in self.features]
        for name in ("scaler_mean", "scaler_scale", "feature_min", "feature_max"):
            try:
                setattr(self, name, np.asarray(getattr(self, name), dtype=float))
            except (TypeError, ValueError):
                raise InputError(f"model store: {name} must hold numbers") from None
        self.validate()

    @property
    def feature_set(self) -> str:
        """The set's name (what a store's ``feature_set`` column and table index say)."""
        return self.name

    @property
    def intercept(self) -> np.ndarray:
        return self.genes["intercept"].to_numpy(dtype=float)

    @property
    def gene_names(self) -> list[str]:
        return [str(g) for g in self.coef.index]

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
            check_finite(values, name, self.features, where)
        if np.any(self.scaler_scale <= 0):
            bad = self.features[int(np.argmax(self.scaler_scale <= 0))]
            raise InputError(f"{where}: scaler_scale of '{bad}' is not positive")
        if np.any(self.feature_min > self.feature_max):
            bad = self.features[int(np.argmax(self.feature_min > self.feature_max))]
            raise InputError(f"{where}: feature_min of '{bad}' is above its feature_max")
        if not (isinstance(self.l1_ratio, int | float) and 0.0 <= self.l1_ratio <= 1.0):
            raise InputError(f"{where}: l1_ratio {self.l1_ratio!r} is not in [0, 1]")
        self._validate_genes(where)
        self._validate_intervals(where)

    def _validate_genes(self, where: str) -> None:
        """The genes table and coefficients: the same genes, once each, finite numbers."""
        if not self.coef.index.equals(self.genes.index):
            raise InputError(f"{where}: genes table and coef rows name different genes")
        if self.coef.index.has_duplicates:
            dup = self.coef.index[self.coef.index.duplicated()][0]
            raise InputError(f"{where}: duplicate gene '{dup}'")
        for col in ("intercept", "alpha"):
            if col not in self.genes.columns:
                raise InputError(f"{where}: genes table lacks column '{col}'")
        for label, frame, cols in (
            ("coef", self.coef, self.features),
            ("genes", self.genes, ["intercept", "alpha"]),
        ):
            for col in cols:
                values = frame[col]
                if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
                    raise InputError(
                        f"{where}: {label} column '{col}' is {values.dtype}, not numbers"
                    )
                check_finite(
                    values.to_numpy(dtype=float), f"{label} column '{col}'", frame.index, where
                )
        if np.any(self.genes["alpha"].to_numpy(dtype=float) < 0):
            raise InputError(f"{where}: genes column 'alpha' has a negative value")

    def _validate_intervals(self, where: str) -> None:
        """The intervals, if held: this model's genes and features, quantiles not NaN."""
        if self.intervals is None:
            return
        table = self.intervals.table
        if not table.index.equals(self.coef.index) or self.intervals.features != self.features:
            raise InputError(f"{where}: intervals name other genes or features than the model")
        values = table.to_numpy(dtype=float)
        if np.isnan(values).any():
            raise InputError(f"{where}: intervals table holds NaN (retrain the store)")

    def prediction_terms(self, genes=None, dtype=np.float64):
        """``(coef, offset, centre)`` of :func:`linear_predict` for the rows ``genes``
        (an array of row indices; default: all genes): :func:`centred_terms`."""
        coef64 = self.coef.to_numpy(dtype=float)
        intercept = self.intercept
        if genes is not None:
            coef64, intercept = coef64[genes], intercept[genes]
        return centred_terms(coef64, intercept, self.scaler_mean, dtype)

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

        The linear model sees a cell beyond the training range moved into it
        (:func:`bound_features`), as the predict stage does.
        """
        if isinstance(X, pd.DataFrame):
            X = X[self.features].to_numpy(dtype=float)
        X = np.asarray(X, dtype=float)
        bounded = bound_features(X, self.scaler_mean, self.feature_min, self.feature_max)
        out = linear_predict(*self.prediction_terms(genes, dtype), bounded).T
        # model best / mixture: genes whose kind is not lasso come through identity (its
        # probabilities saturate by themselves: the cell's own features)
        return apply_mixture(out, self.mixture_terms(genes), X)

    def mixture_terms(self, genes=None):
        """The identity terms of the genes ``genes`` (None: linear genes only, or no
        identity part): :func:`~ephys2expr.model.store._identity.mixture_terms`."""
        kinds = self.genes["model_kind"] if "model_kind" in self.genes.columns else None
        return mixture_terms(self.identity, self.name, kinds, genes)

    def identity_probabilities(self, X) -> dict:
        """Level -> cells x classes DataFrame of P(class | x) (features in ``self.features``
        order, or a DataFrame holding them); empty without an identity part."""
        if self.identity is None:
            return {}
        index = X.index if isinstance(X, pd.DataFrame) else None
        if isinstance(X, pd.DataFrame):
            X = X[self.features].to_numpy(dtype=float)
        probas = self.identity.probabilities(self.name, np.asarray(X, dtype=float))
        return {
            lv: pd.DataFrame(
                p, index=index, columns=self.identity.classifiers[self.name][lv].classes
            )
            for lv, p in probas.items()
        }


def clip_expression(values: np.ndarray) -> np.ndarray:
    """``values`` clipped in place to :data:`EXPRESSION_RANGE` (and returned). Non-finite
    values stay as they are: an overflow is an error the writers report, not a maximum."""
    return np.clip(values, *EXPRESSION_RANGE, out=values, where=np.isfinite(values))


def centred_terms(coef64, intercept, centre, dtype=np.float64):
    """``(coef, offset, centre)`` of :func:`linear_predict` for a linear model.

    The coefficients act on features centred on the training means (``offset = intercept +
    coef @ centre``) so that the products stay small, which keeps float32 results within
    ~1e-5 log2 units of float64.
    """
    coef = np.ascontiguousarray(coef64, dtype=dtype)
    offset = (intercept + coef64 @ centre).astype(dtype)[:, None]
    return coef, offset, np.asarray(centre, dtype=float)


def linear_predict(coef, offset, centre, X, clip: bool = True) -> np.ndarray:
    """Genes x cells block ``coef @ (X - centre).T + offset`` in ``coef``'s dtype, clipped
    to :data:`EXPRESSION_RANGE` (``clip=False``: the linear model's raw values, which only
    the permutation null's test statistic uses).

    The one place where predictions are computed (:meth:`FeatureSet.predict` and the
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
    return clip_expression(out) if clip else out


def check_finite(values: np.ndarray, what: str, labels, where: str) -> None:
    """Raise naming the first non-finite entry of ``values`` (labelled by ``labels``)."""
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"{where}: {what} is {values[i]} at '{labels[i]}' (must be finite)")


__all__ = [
    "EXPRESSION_RANGE",
    "FeatureSet",
    "centred_terms",
    "check_finite",
    "clip_expression",
    "linear_predict",
]
