"""The identity part of a model store (schema 6): classifiers and class means, as tables.

A per-cell store trained with ``train.model: mixture | best`` holds, per feature set and
level (``family``, ``type``), a softmax classifier - ``P(class | x) = softmax(((x - mean) /
scale) @ coef.T + intercept)``, the formula of
:func:`ephys2expr.identity.classifier.proba_from_model` (a test compares the two) - and, per
level, every class's mean expression over all training cells. With the genes table's
``model_kind`` (``lasso``, ``family``, ``type``, ``blend``) that is the ``best`` expression:
each gene from its kind. On disk (no pickle, md5-verified like every store table):

* ``identity.parquet`` - index (feature_set, level, class); ``intercept`` and one
  coefficient column per store feature (standardised units; 0 for a set's left-out ones);
* ``class_means.parquet`` - one row per gene (index ``gene``, the store's order), one column
  per (level, class) (two-level column index); genes as rows because a type-mean store has
  32,314 genes and no classes: a column per gene made writing and reading it take ~20 s;
* ``model.json`` ``identity`` - per set and level: ``kind``, ``param``, ``scaler_mean``,
  ``scaler_scale`` (the classifier's own standardisation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ephys2expr.errors import InputError
from ephys2expr.identity.classifier import softmax
from ephys2expr.identity.mixture import blend

IDENTITY = "identity.parquet"
CLASS_MEANS = "class_means.parquet"
LEVELS = ("family", "type")
MIXTURE_KINDS = ("family", "type", "blend")


@dataclass
class LevelClassifier:
    """One level's stored classifier: classes, coefficients (classes x features of its
    set, standardised units), intercepts and the standardisation; for ``kind`` ``knn``
    instead its standardised training ``rows`` and their class indices ``labels`` (``k`` =
    ``param``; coefficients and intercepts all 0)."""

    classes: list
    coef: np.ndarray
    intercept: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    kind: str = "logreg"
    param: float = 0.0
    rows: np.ndarray | None = None
    labels: np.ndarray | None = None

    def proba(self, X) -> np.ndarray:
        """P(class | x), cells x classes (``X``: cells x the set's features)."""
        if self.kind == "knn":
            return knn_vote_shares(
                self.rows,
                self.labels,
                len(self.classes),
                int(self.param),
                (np.asarray(X, dtype=float) - self.mean) / self.scale,
            )
        return softmax(
            ((np.asarray(X, dtype=float) - self.mean) / self.scale) @ self.coef.T + self.intercept
        )


def knn_vote_shares(rows, labels, n_classes: int, k: int, Xs) -> np.ndarray:
    """Cells x classes: the share of each class among the ``k`` nearest ``rows``
    (standardised units, Euclidean; uniform votes) of each row of ``Xs`` - the kNN of
    :class:`~ephys2expr.identity.classifier.IdentityClassifier` (a test compares the two)."""
    from sklearn.neighbors import NearestNeighbors

    k = min(int(k), len(rows))
    idx = NearestNeighbors(n_neighbors=k).fit(rows).kneighbors(Xs, return_distance=False)
    votes = np.eye(n_classes)[np.asarray(labels, dtype=np.int64)[idx]].sum(axis=1)
    return votes / k


@dataclass
class StoreIdentity:
    """Classifiers by feature set and level, class means by level (classes x genes)."""

    classifiers: dict
    means: dict

    def probabilities(self, feature_set: str, X) -> dict:
        """Level -> cells x classes probabilities for features ``X`` of ``feature_set``."""
        if feature_set not in self.classifiers:
            raise InputError(f"model store: no identity classifier for feature set {feature_set!r}")
        return {lv: c.proba(X) for lv, c in self.classifiers[feature_set].items()}


def nest_types(family_proba: np.ndarray, type_proba: np.ndarray, type_family: np.ndarray):
    """Type probabilities that agree with the family classifier, and each cell's type inside
    its most probable family: ``(nested type probabilities, chosen type index)``.

    The family and type classifiers are fitted apart, so their most probable classes
    contradicted each other for 26-38 % of cells. Here each family's probability (the
    family classifier's, which CV scores) is shared among its types in the proportions the
    type classifier gives them, ``P(t) = P(f(t)) * P_type(t) / sum_{t' in f(t)} P_type(t')``
    (evenly where the type classifier gives the whole family 0), so that a family's
    probability is the sum of its types'; the chosen type is the most probable type of the
    chosen family (first on ties). Family predictions are unchanged.

    Parameters
    ----------
    family_proba : ndarray, shape (n_cells, n_families)
    type_proba : ndarray, shape (n_cells, n_types)
    type_family : ndarray of int, shape (n_types,)
        Each type's family, as a column of ``family_proba``.
    """
    type_family = np.asarray(type_family, dtype=np.int64)
    n_fam = family_proba.shape[1]
    member = np.eye(n_fam)[type_family]  # types x families
    share = type_proba @ member  # cells x families: type probability per family
    size = member.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        within = np.where(
            share[:, type_family] > 0, type_proba / share[:, type_family], 1.0 / size[type_family]
        )
    nested = family_proba[:, type_family] * within
    chosen_family = family_proba.argmax(axis=1)
    masked = np.where(type_family[None, :] == chosen_family[:, None], nested, -np.inf)
    chosen = masked.argmax(axis=1)
    alone = ~np.isfinite(masked).any(axis=1)  # a family without types: the likeliest type
    chosen[alone] = nested[alone].argmax(axis=1)
    return nested, chosen


def mixture_terms(identity: StoreIdentity | None, feature_set: str, kinds, gene_idx=None):
    """What :func:`apply_mixture` needs for the genes ``gene_idx`` of one feature set's model
    (``kinds``: the genes table's ``model_kind``, all genes), or None when every one of them
    is predicted by its linear model: plain arrays, so that they travel to a Dask worker."""
    if identity is None or kinds is None:
        return None
    kinds = np.asarray(kinds, dtype=object)
    if gene_idx is not None:
        kinds = kinds[gene_idx]
    cols = np.flatnonzero(kinds != "lasso")
    if not cols.size:
        return None
    genes = cols if gene_idx is None else np.asarray(gene_idx)[cols]
    means = {lv: identity.means[lv].to_numpy(dtype=float)[:, genes] for lv in LEVELS}
    return identity.classifiers[feature_set], means, cols, kinds[cols]


def apply_mixture(linear: np.ndarray, terms, X) -> np.ndarray:
    """``linear`` (cells x genes) with each non-lasso gene replaced by its mixture kind's
    expression for the cells ``X`` (features of the model's set; ``terms`` from
    :func:`mixture_terms`, None = unchanged). In place; returned."""
    if terms is None:
        return linear
    classifiers, means, cols, kinds = terms
    mix = {lv: classifiers[lv].proba(X) @ means[lv] for lv in LEVELS}
    mix["blend"] = blend(mix["family"], mix["type"])
    for kind in MIXTURE_KINDS:
        sel = kinds == kind
        if sel.any():
            linear[:, cols[sel]] = mix[kind][:, sel]
    return linear


def identity_tables(identity: StoreIdentity | None, sets: dict, genes: list[str]):
    """``(meta, identity table, class-means table)`` of a store (``sets``: set name -> its
    features, store features first); empty tables when the store has no identity part."""
    features = next(iter(sets.values()))
    cols = ["intercept", *features]
    gene_index = pd.Index([str(g) for g in genes], name="gene")
    if identity is None:
        empty = pd.DataFrame(
            {c: pd.Series(dtype=float) for c in cols},
            index=pd.MultiIndex.from_tuples([], names=["feature_set", "level", "class"]),
        )
        means = pd.DataFrame(
            np.empty((len(genes), 0)),
            index=gene_index,
            columns=pd.MultiIndex.from_tuples([], names=["level", "class"]),
        )
        return None, empty, means
    meta, parts = {}, []
    for name, levels in identity.classifiers.items():
        meta[name] = {}
        for lv, c in levels.items():
            meta[name][lv] = {
                "kind": c.kind,
                "param": float(c.param),
                "scaler_mean": c.mean.tolist(),
                "scaler_scale": c.scale.tolist(),
            }
            block = pd.DataFrame(0.0, index=c.classes, columns=features)
            block[sets[name]] = c.coef
            block.insert(0, "intercept", c.intercept)
            block.index = pd.MultiIndex.from_tuples(
                [(name, lv, str(k)) for k in c.classes], names=["feature_set", "level", "class"]
            )
            parts.append(block)
    means = pd.concat(
        {lv: m.astype(float) for lv, m in identity.means.items()}, names=["level", "class"]
    )
    means.index = means.index.set_levels(means.index.levels[1].astype(str), level=1)
    means = means.T.set_axis(gene_index)  # genes as rows (see the module docstring)
    return meta, pd.concat(parts), means


def identity_from_tables(
    meta,
    table: pd.DataFrame,
    means: pd.DataFrame,
    sets: dict,
    genes,
    train_features=None,
    train_types=None,
):
    """The :class:`StoreIdentity` of a loaded store (None without one); mismatches are one
    :class:`InputError` line. A ``knn`` classifier takes its rows from the store's
    ``train_features`` (standardised by its own scaler) and its labels from the level's
    column of ``train_types``: nothing is pickled, nothing stored twice."""
    if meta is None or len(table) == 0:
        return None
    if isinstance(means.index, pd.MultiIndex) or list(means.index.astype(str)) != [
        str(g) for g in genes
    ]:
        raise InputError(f"model store: {CLASS_MEANS} rows are not the store's genes")
    # (level, class) x genes, as StoreIdentity holds them; C order, as when trained, so that
    # the mixture's matrix products round the same way
    means = pd.DataFrame(
        np.ascontiguousarray(means.to_numpy(dtype=float).T),
        index=means.columns,
        columns=[str(g) for g in genes],
    )
    if not np.all(np.isfinite(means.to_numpy(dtype=float))):
        raise InputError(f"model store: {CLASS_MEANS} holds a non-finite value")
    classifiers = {}
    for name, levels in meta.items():
        if name not in sets:
            raise InputError(f"model store: identity of unknown feature set {name!r}")
        classifiers[name] = {}
        for lv, entry in levels.items():
            try:
                block = table.xs((name, lv), level=(0, 1))
            except KeyError:
                raise InputError(f"model store: {IDENTITY} has no rows for {name}/{lv}") from None
            classes = [str(c) for c in block.index]
            if list(means.xs(lv, level=0).index.astype(str)) != classes:
                raise InputError(
                    f"model store: {CLASS_MEANS} classes of {lv!r} differ from the classifier's"
                )
            coef = block[sets[name]].to_numpy(dtype=float)
            if not np.all(np.isfinite(coef)):
                raise InputError(f"model store: {IDENTITY} holds a non-finite coefficient")
            clf = LevelClassifier(
                classes,
                coef,
                block["intercept"].to_numpy(dtype=float),
                np.asarray(entry["scaler_mean"], dtype=float),
                np.asarray(entry["scaler_scale"], dtype=float),
                entry["kind"],
                entry["param"],
            )
            if clf.kind == "knn":
                clf.rows, clf.labels = _knn_rows(clf, lv, sets[name], train_features, train_types)
            classifiers[name][lv] = clf
    return StoreIdentity(classifiers, {lv: means.xs(lv, level=0) for lv in LEVELS})


def _knn_rows(clf: LevelClassifier, level: str, features: list, train_features, train_types):
    """``(standardised rows, class indices)`` of a stored ``knn`` classifier."""
    if train_features is None or train_types is None or level not in train_types.columns:
        raise InputError(
            f"model store: a knn {level} classifier needs train_features and "
            f"train_types with column {level!r}"
        )
    lookup = {c: i for i, c in enumerate(clf.classes)}
    labels = [lookup.get(str(v), -1) for v in train_types[level]]
    if min(labels, default=-1) < 0 or not 1 <= clf.param <= len(labels):
        raise InputError(
            f"model store: the knn {level} classifier's labels or k do not match its training rows"
        )
    rows = (train_features[features].to_numpy(dtype=float) - clf.mean) / clf.scale
    return rows, np.asarray(labels, dtype=np.int64)


__all__ = [
    "CLASS_MEANS",
    "IDENTITY",
    "LEVELS",
    "LevelClassifier",
    "MIXTURE_KINDS",
    "StoreIdentity",
    "apply_mixture",
    "identity_from_tables",
    "identity_tables",
    "knn_vote_shares",
    "mixture_terms",
    "nest_types",
]
