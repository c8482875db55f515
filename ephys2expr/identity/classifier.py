"""The identity classifier: P(class | ephys features), tuned by an inner grouped CV.

Three candidate kinds compete inside the training rows (the caller passes the inner folds,
grouped by animal like the linear model's alpha search):

* ``logreg`` - scikit-learn's multinomial :class:`~sklearn.linear_model.LogisticRegression`
  (L2), ``C`` from :data:`CS`, fitted along the path with warm starts;
* ``knn`` - :class:`~sklearn.neighbors.KNeighborsClassifier`, ``k`` from :data:`KS`
  (uniform votes, so probabilities are vote shares);
* ``majority`` - the training class frequencies (scikit-learn's ``DummyClassifier(strategy=
  "prior")``: the majority class as the label), the baseline the others must beat.

Features are standardised with each training part's own mean and std. The configuration
with the smallest inner out-of-fold log-loss is refitted on all rows. Classes are always the
full list given to :meth:`IdentityClassifier.fit` (e.g. all 76 t-types): a class absent from
the training rows (rare types missing from a fold) gets probability exactly 0 and its
column stays in place, so probability tables of different folds line up.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from ephys2expr.scaling import scaler_stats

# Inverse L2 strengths searched for logreg (standardised features) and neighbour counts for
# knn. The grid centre C = 1 is what every outer fold of Scala 2021 picked at both levels.
CS = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
KS = (5, 10, 20, 40)
KINDS = ("logreg", "knn", "majority")
# lbfgs tolerance: 1e-3 gives the same accuracy and log-loss as 1e-4 on Scala's cells (to
# 0.002) at a third of the time with 76 classes
TOL = 1e-3
EPS = 1e-15  # probabilities are clipped to this in log-losses


def log_loss(proba: np.ndarray, y_index: np.ndarray) -> float:
    """Mean negative log-probability of the true class (clipped at :data:`EPS`)."""
    p = proba[np.arange(len(y_index)), y_index]
    return float(-np.log(np.maximum(p, EPS)).mean())


def _logreg_path(Xtr, ytr, Xva, n_classes, Cs=CS):
    """Probabilities on ``Xva`` for each C (warm-started along increasing C); a training
    part of a single class (tiny sources: a fold of one animal) gives that class
    probability 1 whatever C, as scikit-learn cannot fit it."""
    if np.unique(ytr).size < 2:
        return [_prior(ytr, len(Xva), n_classes)] * len(Cs)
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(warm_start=True, max_iter=1000, tol=TOL)
    out = []
    for C in Cs:
        clf.set_params(C=C)
        out.append(_full(clf.fit(Xtr, ytr), Xva, n_classes))
    return out


def _full(clf, X, n_classes) -> np.ndarray:
    """``clf.predict_proba(X)`` placed in the columns of the full class list (labels are
    class indices); classes the fit never saw stay 0."""
    P = np.zeros((X.shape[0], n_classes))
    P[:, clf.classes_] = clf.predict_proba(X)
    return P


def _knn_path(Xtr, ytr, Xva, n_classes, Ks=KS):
    """Vote shares on ``Xva`` for each k (one neighbour search with the largest k)."""
    from sklearn.neighbors import KNeighborsClassifier

    kmax = min(max(Ks), len(ytr))
    _, idx = KNeighborsClassifier(kmax).fit(Xtr, ytr).kneighbors(Xva)
    onehot = np.eye(n_classes)[ytr[idx]]  # (n_va, kmax, n_classes)
    votes = np.cumsum(onehot, axis=1)
    return [votes[:, min(k, kmax) - 1] / min(k, kmax) for k in Ks]


def _prior(ytr, n_rows, n_classes) -> np.ndarray:
    freq = np.bincount(ytr, minlength=n_classes) / len(ytr)
    return np.tile(freq, (n_rows, 1))


def _configs() -> list[tuple[str, float]]:
    return [("logreg", C) for C in CS] + [("knn", k) for k in KS] + [("majority", 0)]


class IdentityClassifier:
    """P(class | features) by the kind and setting an inner grouped CV prefers.

    Parameters
    ----------
    classes : sequence of str
        The full class list (column order of every probability table).

    Attributes
    ----------
    classes_ : ndarray of str
    kind_ : str
        The chosen kind (``logreg``, ``knn`` or ``majority``).
    param_ : float
        Its setting (C for logreg, k for knn, 0 for majority).
    mean_, scale_ : ndarray, shape (n_features,)
        Standardisation of the training rows (features are standardised before any kind).
    inner_log_loss_ : dict
        Inner out-of-fold log-loss of every configuration, ``"logreg C=1"`` -> value.
    inner_proba_ : ndarray, shape (n_rows, n_classes)
        Inner out-of-fold probabilities of the chosen configuration (what the per-gene
        choice of ``best`` scores the mixture with).
    best_by_kind_ : dict
        Kind -> its best setting by inner log-loss (to compare kinds on outer folds).
    models_ : dict
        Kind -> fitted model on all rows at its best setting: ``coef`` (n_classes, n_features,
        standardised scale), ``intercept`` (zero rows and -inf intercepts for unseen classes)
        for logreg and majority; ``X`` (standardised rows), ``y`` (class indices) and ``k``
        for knn.
    """

    def __init__(self, classes):
        self.classes = list(classes)

    def fit(self, X, y, folds) -> IdentityClassifier:
        """Choose kind and setting by inner CV over ``folds``, then refit on all rows.

        Parameters
        ----------
        X : ndarray, shape (n_rows, n_features)
        y : array of str, shape (n_rows,)
            Labels; each must be in ``classes``.
        folds : list of (train, validation) index arrays
            The inner folds (grouped by animal: :func:`ephys2expr.model.path.inner_folds`).
        """
        # BLAS on one thread: the products are small (about 10 features), and OpenBLAS
        # threads spinning on them slowed the fit 5-30x on 2 shared cores (measured)
        with threadpool_limits(limits=1, user_api="blas"):
            return self._fit(X, y, folds)

    def _fit(self, X, y, folds) -> IdentityClassifier:
        import warnings

        # scikit-learn is imported where it fits, not with the module: the store (and each
        # stage's start) imports this module for softmax alone
        from sklearn.exceptions import ConvergenceWarning

        X = np.asarray(X, dtype=float)
        self.classes_ = np.asarray(self.classes, dtype=object)
        lookup = {c: i for i, c in enumerate(self.classes)}
        yi = np.array([lookup[str(v)] for v in y], dtype=np.int64)
        n_classes = len(self.classes_)
        configs = _configs()
        inner = [np.zeros((len(yi), n_classes)) for _ in configs]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for tr, va in folds:
                mean, scale = scaler_stats(X[tr], near_constant=False)
                Xtr, Xva = (X[tr] - mean) / scale, (X[va] - mean) / scale
                probas = _logreg_path(Xtr, yi[tr], Xva, n_classes)
                probas += _knn_path(Xtr, yi[tr], Xva, n_classes)
                probas.append(_prior(yi[tr], len(va), n_classes))
                for store, P in zip(inner, probas, strict=True):
                    store[va] = P
            losses = [log_loss(P, yi) for P in inner]
            self.inner_log_loss_ = {
                f"{kind} {'C' if kind == 'logreg' else 'k'}={p:g}"
                if kind != "majority"
                else kind: round(loss, 6)
                for (kind, p), loss in zip(configs, losses, strict=True)
            }
            self.best_by_kind_ = {}
            for kind in KINDS:
                idx = [i for i, (k, _) in enumerate(configs) if k == kind]
                self.best_by_kind_[kind] = configs[min(idx, key=lambda i: losses[i])][1]
            best = int(np.argmin(losses))  # first minimum: the simpler logreg on ties
            self.kind_, self.param_ = configs[best]
            self.inner_proba_ = inner[best]
            self.mean_, self.scale_ = scaler_stats(X, near_constant=False)
            Xs = (X - self.mean_) / self.scale_
            self.models_ = {
                kind: self._refit(kind, p, Xs, yi) for kind, p in self.best_by_kind_.items()
            }
        return self

    def _refit(self, kind, param, Xs, yi) -> dict:
        n_classes, p = len(self.classes_), Xs.shape[1]
        coef = np.zeros((n_classes, p))
        intercept = np.full(n_classes, -np.inf)  # unseen classes: probability exactly 0
        if kind == "knn":
            return {
                "X": Xs.copy(),
                "y": yi.copy(),
                "k": int(min(param, len(yi))),
                "n_classes": n_classes,
            }
        if kind == "majority" or np.unique(yi).size < 2:  # one class: logreg is constant
            freq = np.bincount(yi, minlength=n_classes) / len(yi)
            seen = freq > 0
            intercept[seen] = np.log(freq[seen])
            return {"coef": coef, "intercept": intercept}
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=param, max_iter=1000, tol=TOL).fit(Xs, yi)
        if len(clf.classes_) == 2:  # binary: scikit-learn keeps one row (class 1 vs 0)
            coef[clf.classes_[1]], intercept[clf.classes_] = clf.coef_[0], [0.0, clf.intercept_[0]]
            coef[clf.classes_[0]] = 0.0
        else:
            coef[clf.classes_], intercept[clf.classes_] = clf.coef_, clf.intercept_
        return {"coef": coef, "intercept": intercept}

    def predict_proba(self, X, kind: str | None = None) -> np.ndarray:
        """Probabilities, shape (n_rows, n_classes), columns in ``classes_`` order.

        ``kind`` (default: the chosen one) predicts with another kind's refit instead (the
        outer-fold comparison of kinds).
        """
        return proba_from_model(self.models_[kind or self.kind_], self.mean_, self.scale_, X)

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def proba_from_model(model: dict, mean, scale, X) -> np.ndarray:
    """Probabilities of one fitted kind (``IdentityClassifier.models_`` entry): the one
    formula the classifier and the model store both predict with."""
    Xs = (np.asarray(X, dtype=float) - mean) / scale
    if "k" in model:
        ks = (int(model["k"]),)
        return _knn_path(model["X"], model["y"], Xs, int(model["n_classes"]), Ks=ks)[0]
    return softmax(Xs @ np.asarray(model["coef"]).T + np.asarray(model["intercept"]))


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of the scores ``z`` (rows x classes): the one formula of a logistic
    classifier's probabilities, fitted (:class:`IdentityClassifier`) or stored
    (:class:`~ephys2expr.model.store.StoreClassifier`). A class scored ``-inf``
    (unseen in training) gets probability 0."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


__all__ = [
    "CS",
    "KINDS",
    "KS",
    "IdentityClassifier",
    "log_loss",
    "proba_from_model",
    "softmax",
]
