"""Nested grouped CV of the identity classifier, per level (family, type).

In each outer fold (the linear model's folds, animals whole) an
:class:`~ephys2expr.identity.classifier.IdentityClassifier` picks its kind (logreg / knn /
majority) and setting by an inner CV over the outer training rows - the same inner folds,
grouped by animal, as the linear model's alpha search (:func:`ephys2expr.model.path.
inner_folds`) - and predicts the held-out cells. Every kind's own out-of-fold probabilities
are kept too: the report compares the chosen procedure with the majority class and kNN on the
same folds. The final classifier is fitted on all rows the same way.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ephys2expr.identity.classifier import KINDS, IdentityClassifier, log_loss
from ephys2expr.identity.scores import confusion, identity_scores
from ephys2expr.model.path import inner_folds
from ephys2expr.model.store import nest_types
from ephys2expr.train.settings import TrainSettings

log = logging.getLogger("ephys2expr")

LEVELS = ("family", "type")


@dataclass
class LevelCV:
    """One level's nested CV.

    Attributes
    ----------
    level : str
    classes : ndarray of str
        The full class list (columns of every probability table).
    y : ndarray of int
        Each row's class index.
    oof : ndarray, shape (n_rows, n_classes)
        Out-of-fold probabilities of the whole procedure (kind chosen in each fold).
    oof_by_kind : dict
        Kind -> its out-of-fold probabilities (setting chosen by the inner CV).
    fold_fits : list of IdentityClassifier
        Each outer fold's classifier (``inner_proba_``: its inner out-of-fold probabilities).
    final : IdentityClassifier
        Fitted on all rows.
    """

    level: str
    classes: np.ndarray
    y: np.ndarray
    oof: np.ndarray
    oof_by_kind: dict
    fold_fits: list
    final: IdentityClassifier

    def report(self, folds) -> dict:
        """Out-of-fold scores of the procedure and of each kind, and what was chosen."""
        unseen = sum(int(np.isin(self.y[te], self.y[tr], invert=True).sum()) for tr, te in folds)
        by_kind = {k: identity_scores(p, self.y) for k, p in self.oof_by_kind.items()}
        chosen = identity_scores(self.oof, self.y)
        return {
            "n_classes": len(self.classes),
            **chosen,
            "beats_majority": bool(
                chosen["log_loss"] < by_kind["majority"]["log_loss"]
                and chosen["accuracy"] > by_kind["majority"]["accuracy"]
            ),
            "by_kind": by_kind,
            "fold_choices": dict(Counter(f"{f.kind_} {f.param_:g}" for f in self.fold_fits)),
            "final_choice": f"{self.final.kind_} {self.final.param_:g}",
            "held_out_rows_of_classes_unseen_in_training": unseen,
        }

    def confusion_table(self) -> pd.DataFrame:
        """Out-of-fold confusion counts, true class (rows) x predicted class (columns)."""
        cm = confusion(self.oof, self.y, len(self.classes))
        return pd.DataFrame(cm, index=self.classes, columns=self.classes)


def level_inner_folds(tr, settings: TrainSettings, groups):
    """The inner folds on rows ``tr`` - the linear model's alpha search uses the same ones
    (:meth:`MultiGeneElasticNet.fit` calls :func:`inner_folds` with these arguments)."""
    g = None if groups is None else np.asarray(groups)[tr]
    return inner_folds(len(tr), settings.inner_folds, settings.seed, g)


def identity_cv(X, labels, folds, settings: TrainSettings, groups=None) -> LevelCV:
    """Nested CV of one level's classifier (see the module docstring).

    Parameters
    ----------
    X : ndarray, shape (n_rows, n_features)
    labels : array of str, shape (n_rows,)
    folds : list of (train, test) index arrays
        The outer folds.
    settings : TrainSettings
        ``inner_folds`` and ``seed`` (and ``cv``: the inner folds keep animals whole with
        ``group_kfold``).
    groups : array, optional
        Animal of each row (``cv: group_kfold``).
    """
    X = np.asarray(X, dtype=float)
    labels = np.asarray(labels).astype(str)
    classes = np.unique(labels)
    y = np.searchsorted(classes, labels)
    n, n_classes = len(y), len(classes)
    oof = np.zeros((n, n_classes))
    by_kind = {k: np.zeros((n, n_classes)) for k in KINDS}
    fits = []
    for tr, te in folds:
        clf = IdentityClassifier(classes).fit(
            X[tr], labels[tr], level_inner_folds(tr, settings, groups)
        )
        oof[te] = clf.predict_proba(X[te])
        for kind in KINDS:
            by_kind[kind][te] = clf.predict_proba(X[te], kind)
        fits.append(clf)
    all_rows = np.arange(n)
    final = IdentityClassifier(classes).fit(
        X, labels, level_inner_folds(all_rows, settings, groups)
    )
    return LevelCV("", classes, y, oof, by_kind, fits, final)


def nesting_report(levels: dict, types: pd.DataFrame) -> dict | None:
    """How often the out-of-fold family and type contradict each other (the type's family
    is not the most probable family), and the scores once the type is chosen inside the
    family (:func:`~ephys2expr.model.store.nest_types`, what predict reports);
    None without both levels. Family predictions are the family classifier's either way."""
    if set(LEVELS) - set(levels):
        return None
    fam, typ = levels["family"], levels["type"]
    lookup = types.groupby("type")["family"].first()
    type_family = np.searchsorted(fam.classes, lookup.loc[typ.classes].astype(str).to_numpy())
    nested, chosen = nest_types(fam.oof, typ.oof, type_family)
    family = fam.oof.argmax(axis=1)
    before = typ.oof.argmax(axis=1)
    return {
        "frac_type_outside_family": round(float((type_family[before] != family).mean()), 4),
        "frac_type_outside_family_nested": round(float((type_family[chosen] != family).mean()), 4),
        "family_accuracy": round(float((family == fam.y).mean()), 4),
        "type_accuracy": round(float((before == typ.y).mean()), 4),
        "type_accuracy_nested": round(float((chosen == typ.y).mean()), 4),
        "type_log_loss": round(log_loss(typ.oof, typ.y), 4),
        "type_log_loss_nested": round(log_loss(nested, typ.y), 4),
    }


def identity_levels(X, types: pd.DataFrame, folds, settings: TrainSettings, groups=None):
    """:func:`identity_cv` for each level of :data:`LEVELS` (``types`` columns), by name."""
    out = {}
    for level in LEVELS:
        res = identity_cv(X, types[level].to_numpy(), folds, settings, groups)
        res.level = level
        s = identity_scores(res.oof, res.y)
        log.info(
            "identity %s (%d classes): out-of-fold accuracy %.3f, balanced %.3f, log-loss %.3f, "
            "ECE %.3f; final %s %g",
            level,
            len(res.classes),
            s["accuracy"],
            s["balanced_accuracy"],
            s["log_loss"],
            s["ece"],
            res.final.kind_,
            res.final.param_,
        )
        out[level] = res
    return out


__all__ = [
    "LEVELS",
    "LevelCV",
    "identity_cv",
    "identity_levels",
    "level_inner_folds",
    "nesting_report",
]
