"""The vectorised solver against scikit-learn's Lasso, ElasticNet and Ridge."""

from __future__ import annotations

import warnings
import zlib

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import ElasticNet, Lasso, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ephys2expr.errors import InputError
from ephys2expr.model.estimator import MultiGeneElasticNet
from ephys2expr.model.path import alpha_grid, elastic_net_path, path_validation_sse
from ephys2expr.model.store import EXPRESSION_RANGE


@pytest.fixture(scope="module")
def problem():
    """20 types x 11 correlated features in mixed units; genes with sparse signal + noise."""
    rng = np.random.default_rng(42)
    n, p, g = 20, 11, 60
    latent = rng.normal(size=(n, 3))
    X = latent @ rng.normal(size=(3, p)) + 0.4 * rng.normal(size=(n, p))
    X = X * rng.uniform(0.05, 300, size=p) + rng.normal(size=p) * 50  # original-unit scales
    Xs = StandardScaler().fit_transform(X)
    B = rng.normal(size=(p, g)) * (rng.random((p, g)) < 0.3)
    Y = Xs @ B + rng.normal(size=(n, g)) * rng.uniform(0.1, 2, size=g)
    Y[:, :5] = rng.normal(size=(n, 5)) * 0.01  # nearly constant genes
    w = rng.uniform(0.3, 4.0, size=n)
    return X, Y, w


def _sklearn(penalty, alpha, l1_ratio):
    if penalty == "lasso":
        return Lasso(alpha=alpha, tol=1e-13, max_iter=1_000_000)
    if penalty == "elasticnet":
        return ElasticNet(alpha=alpha, l1_ratio=l1_ratio, tol=1e-13, max_iter=1_000_000)
    return Ridge(alpha=alpha)


@pytest.mark.parametrize(
    "penalty,l1_ratio", [("lasso", 1.0), ("elasticnet", 0.3), ("elasticnet", 0.8), ("ridge", 0.0)]
)
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_sklearn_on_standardised_data(problem, penalty, l1_ratio, weighted):
    X, Y, w = problem
    sw = w if weighted else None
    # a seed per case that every process agrees on (hash() of a str is salted per process)
    rng = np.random.default_rng(zlib.crc32(f"{penalty}/{l1_ratio}/{weighted}".encode()))
    for alpha in rng.choice(alpha_grid(3.0, 1e-3, 30), size=4, replace=False):
        ours = MultiGeneElasticNet(penalty, alpha=float(alpha), l1_ratio=l1_ratio).fit(X, Y, sw)
        for gene in rng.choice(Y.shape[1], size=8, replace=False):
            ref = make_pipeline(StandardScaler(), _sklearn(penalty, alpha, l1_ratio))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                ref.fit(X, Y[:, gene], **{ref.steps[-1][0] + "__sample_weight": sw})
            est, scaler = ref[-1], ref[0]
            np.testing.assert_allclose(ours.coef_std_[gene], est.coef_, atol=1e-6, rtol=0)
            np.testing.assert_allclose(ours.intercept_std_[gene], est.intercept_, atol=1e-6)
            # original units: same predictions, coefficients divided by the scale
            np.testing.assert_allclose(
                ours.coef_[gene], est.coef_ / scaler.scale_, atol=1e-6, rtol=1e-7
            )
            linear = ours.predict(X, clip=False)[:, gene]  # synthetic: negative values too
            np.testing.assert_allclose(linear, ref.predict(X), atol=1e-6)
            np.testing.assert_allclose(ours.predict(X)[:, gene], np.clip(linear, *EXPRESSION_RANGE))


def test_path_warm_starts_equal_cold_fits(problem):
    X, Y, _ = problem
    Xs = StandardScaler().fit_transform(X)
    alphas = alpha_grid(100.0, 1e-3, 25)
    path = elastic_net_path(Xs, Y, alphas, penalty="elasticnet", l1_ratio=0.6)
    for i in (0, 7, 24):
        cold = elastic_net_path(Xs, Y, [alphas[i]], penalty="elasticnet", l1_ratio=0.6)
        np.testing.assert_allclose(path.coefs[:, i], cold.coefs[:, 0], atol=1e-9)
    assert path.converged.all()
    # large alphas: exactly zero (KKT shortcut), small: dense
    assert np.all(path.coefs[:, 0] == 0)
    assert (path.coefs[5:, -1] != 0).mean() > 0.9


def test_active_set_reuses_its_factor_only_from_its_own_solution(problem):
    """The active-set step keeps its Cholesky factor for the next call on the same Gram
    matrix (the next alpha of a path). Started instead from another point with as many
    active features, it must rebuild it: the result is a cold start's, and scikit-learn's."""
    from ephys2expr.model.active_set import active_set_solve
    from ephys2expr.model.kernels import gene_scratch

    X, Y, _ = problem
    Xs = StandardScaler().fit_transform(X)
    n, p = Xs.shape
    y = Y[:, 10] - Y[:, 10].mean()
    gram, c = Xs.T @ Xs / n, Xs.T @ y / n
    w, q, _, mat, vec, qnew, theta, order, state, dinv = gene_scratch(p)

    def solve(start, lam1, keep_factor):
        if not keep_factor:
            state[0] = -1.0
        w[:] = start
        q[:] = c - gram @ start
        steps = active_set_solve(
            gram, c, lam1, 0.0, w, q, theta, order, mat, dinv, qnew, vec, 100, state
        )
        assert steps > 0
        return w.copy()

    def sklearn(lam1):
        return Lasso(alpha=lam1, fit_intercept=False, tol=1e-14, max_iter=10**6).fit(Xs, y).coef_

    first = solve(np.zeros(p), 0.5, keep_factor=False)
    support = np.flatnonzero(first)
    assert 2 <= support.size <= p // 2  # room for a disjoint start of the same size
    np.testing.assert_allclose(first, sklearn(0.5), atol=1e-9)
    other = np.zeros(p)
    other[np.setdiff1d(np.arange(p), support)[: support.size]] = 0.01
    reused = solve(other, 0.3, keep_factor=True)
    np.testing.assert_array_equal(reused, solve(other, 0.3, keep_factor=False))
    np.testing.assert_allclose(reused, sklearn(0.3), atol=1e-9)
    # and from its own solution it carries on along the path, to the same optimum
    solve(np.zeros(p), 0.5, keep_factor=False)
    np.testing.assert_allclose(solve(first, 0.3, keep_factor=True), sklearn(0.3), atol=1e-9)


def test_per_gene_alpha_equals_separate_fits(problem):
    X, Y, _ = problem
    alphas = np.geomspace(1e-3, 1.0, Y.shape[1])
    together = MultiGeneElasticNet("lasso", alpha=alphas).fit(X, Y)
    for g in (0, 17, 59):
        alone = MultiGeneElasticNet("lasso", alpha=float(alphas[g])).fit(X, Y[:, [g]])
        np.testing.assert_allclose(together.coef_[g], alone.coef_[0], atol=1e-10)


def test_collinear_features_fall_back_and_reach_sklearn_objective(problem):
    """Duplicated columns make the active block singular: the CD fallback must still
    reach scikit-learn's optimum (predictions, not the non-unique coefficients)."""
    X, Y, _ = problem
    Xd = StandardScaler().fit_transform(np.c_[X, X[:, :2]])
    res = elastic_net_path(Xd, Y[:, 5:15], [0.01], penalty="lasso", l1_ratio=1.0)
    assert res.converged.all()
    for k in range(10):
        ref = Lasso(alpha=0.01, tol=1e-13, max_iter=1_000_000).fit(Xd, Y[:, 5 + k])
        ours = Xd @ res.coefs[k, 0] + res.intercepts[k, 0]
        np.testing.assert_allclose(ours, ref.predict(Xd), atol=1e-5)


@pytest.mark.parametrize("penalty,l1_ratio", [("lasso", 1.0), ("elasticnet", 0.4), ("ridge", 0.0)])
@pytest.mark.parametrize("weighted", [False, True])
def test_validation_sse_equals_residuals_of_the_path(problem, penalty, l1_ratio, weighted):
    """The inner CV's fused score (Gram expansion, no coefficients kept) is the weighted
    squared error of the path's own predictions on the validation rows."""
    X, Y, w = problem
    Xs = StandardScaler().fit_transform(X)
    tr, va = np.arange(4, 20), np.arange(4)
    wt, wv = (w[tr], w[va]) if weighted else (None, None)
    alphas = alpha_grid(3.0, 1e-3, 15)
    kw = dict(penalty=penalty, l1_ratio=l1_ratio, sample_weight=wt)
    sse, n_iter, converged = path_validation_sse(
        Xs[tr], Y[tr], Xs[va], Y[va], alphas, val_weight=wv, **kw
    )
    path = elastic_net_path(Xs[tr], Y[tr], alphas, **kw)
    pred = path.coefs @ Xs[va].T + path.intercepts[:, :, None]  # (G, A, n_va)
    ref = ((pred - Y[va].T[:, None, :]) ** 2) @ (np.ones(len(va)) if wv is None else wv)
    np.testing.assert_allclose(sse, ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(n_iter, path.n_iter)
    assert converged.all()
    if penalty != "ridge":  # both kinds of point are covered: all-zero and active ones
        active = (path.coefs != 0).any(axis=2)
        assert active.any() and (~active).any()


def test_auto_alpha_matches_manual_inner_cv(problem):
    """'auto' picks, per gene, the path alpha with the smallest pooled inner-CV error,
    standardising each inner training part on its own."""
    from ephys2expr.model.path import inner_folds

    X, Y, _ = problem
    alphas = alpha_grid(3.0, 1e-3, 12)
    est = MultiGeneElasticNet("lasso", alpha="auto", alphas=alphas, inner_cv=4, random_state=3).fit(
        X, Y
    )
    sse = np.zeros((Y.shape[1], len(alphas)))
    for tr, va in inner_folds(len(X), 4, 3):
        for j, a in enumerate(alphas):
            pipe = MultiGeneElasticNet("lasso", alpha=float(a)).fit(X[tr], Y[tr])
            # the inner CV scores the linear fits (the kernel computes their errors)
            sse[:, j] += ((pipe.predict(X[va], clip=False) - Y[va]) ** 2).sum(axis=0)
    np.testing.assert_allclose(est.cv_mse_ * len(X), sse, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(est.alpha_, alphas[np.argmin(sse, axis=1)])
    # nearly constant genes: every alpha zeroes them -> the largest alpha is chosen
    assert np.all(est.alpha_[:5] == alphas[0]) and np.all(est.coef_[:5] == 0)


def test_bad_input_is_one_line_input_error(problem):
    X, Y, _ = problem
    with pytest.raises(InputError, match="penalty"):
        MultiGeneElasticNet("lars", alpha=0.1).fit(X, Y)
    with pytest.raises(InputError, match="same rows"):
        MultiGeneElasticNet("lasso", alpha=0.1).fit(X[:-1], Y)
    Ybad = Y.copy()
    Ybad[3, 2] = np.nan
    with pytest.raises(InputError, match="NaN"):
        MultiGeneElasticNet("lasso", alpha=0.1).fit(X, Ybad)
    with pytest.raises(InputError, match="ridge needs alpha > 0"):
        MultiGeneElasticNet("ridge", alpha=0.0).fit(X, Y)


def test_settings_the_estimator_needs_have_no_second_default(problem):
    """The estimator has no default of its own for what params.yaml train holds: 'auto'
    without its inner-CV settings, or an elastic net without its mixing, is an error."""
    X, Y, _ = problem
    with pytest.raises(InputError, match="alpha 'auto' needs alphas, inner_cv, random_state"):
        MultiGeneElasticNet("lasso", "auto").fit(X, Y)
    for bad in (None, float("nan"), 1.5):
        with pytest.raises(InputError, match="elasticnet needs l1_ratio"):
            MultiGeneElasticNet("elasticnet", 0.1, bad).fit(X, Y)
