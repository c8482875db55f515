"""Joint spaces of predicted and measured expression, 2-D embeddings and neighbourhood checks.

Two ways of putting predicted and measured cells in one space, on their shared genes:

* ``zscore`` - the original's: every gene z-scored within each source, then PCA of the
  stacked matrix. Per-gene centring and scaling does not align the *covariance*: predicted
  expression is a linear function of ~11 ephys features, so it varies along at most 11
  directions, while measured expression varies along many more (type structure plus
  noise). The stacked PCA therefore separates the sources.
* ``pc_align`` - the correction: the per-source z-scored measured cells are projected onto
  the principal axes of the predicted cells (the only directions in which predictions
  vary), then each axis is centred and scaled within each source (a per-source
  standardisation in the shared space, as in CORAL-style alignment restricted to the
  diagonal). Measured variation that predictions cannot express is discarded, which is
  what lets the two sources mix; no cell labels are used.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from ephys2expr.validate.agreement import label_transfer

log = logging.getLogger("ephys2expr")

CORRECTIONS = ("zscore", "pc_align")


def zscore_columns(X: np.ndarray) -> np.ndarray:
    """Z-score columns; constant columns become 0 (not NaN)."""
    X = np.asarray(X, dtype=float)
    mu = X.mean(axis=0)
    sd = X.std(axis=0)
    return np.divide(X - mu, sd, out=np.zeros_like(X), where=sd > 0)


def zscore_per_source(X: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Z-score every column within each source (the original's normalisation)."""
    X = np.asarray(X, dtype=float)
    out = np.empty_like(X)
    for s in np.unique(source):
        m = source == s
        out[m] = zscore_columns(X[m])
    return out


def joint_space(
    X: np.ndarray,
    source: np.ndarray,
    correction: str = "zscore",
    reference: str = "predicted",
    n_components: int = 10,
    seed: int = 0,
) -> np.ndarray:
    """Coordinates of predicted and measured cells in one low-dimensional space.

    Parameters
    ----------
    X : ndarray, shape (n_cells, n_genes)
        Stacked log2 expression on the shared genes.
    source : ndarray of str
        Source of each row (e.g. ``predicted``/``measured``).
    correction : {"zscore", "pc_align"}
        See the module docstring.
    reference : str
        The source whose principal axes define the ``pc_align`` space.
    n_components : int
        Number of principal components kept (capped by the data's rank).
    seed : int
        PCA random state.

    Returns
    -------
    ndarray, shape (n_cells, k)
    """
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    source = np.asarray(source)
    Z = zscore_per_source(X, source)
    if correction == "zscore":
        k = int(min(n_components, *Z.shape))
        return PCA(n_components=k, random_state=seed).fit_transform(Z)
    ref = source == reference
    if not ref.any():
        raise ValueError(f"no rows of reference source {reference!r}")
    k = int(min(n_components, ref.sum() - 1, Z.shape[1]))
    pca = PCA(n_components=k, random_state=seed).fit(Z[ref])
    # keep only axes with real variance in the reference (predictions have low rank)
    keep = pca.explained_variance_ > 1e-9 * max(pca.explained_variance_.max(), 1e-300)
    P = pca.transform(Z)[:, keep]
    return zscore_per_source(P, source)


def embed_2d(
    X: np.ndarray,
    method: str,
    seed: int = 0,
    n_pca: int = 30,
    n_neighbors: int = 15,
    perplexity: float = 30.0,
    tsne_max_iter: int = 500,
) -> np.ndarray:
    """Seeded 2-D t-SNE or UMAP of ``X`` after PCA to ``n_pca`` components (for speed).

    UMAP with a ``random_state`` runs single-threaded (umap-learn disables parallelism
    to be reproducible). t-SNE runs ``tsne_max_iter`` iterations (scikit-learn's default
    is 1000; 500 is visually converged for a few thousand cells and halves the time).
    """
    X = np.asarray(X, dtype=float)
    k = int(min(n_pca, X.shape[0] - 1, X.shape[1]))
    if k < X.shape[1]:
        X = PCA(n_components=k, random_state=seed).fit_transform(X)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perp = float(min(perplexity, max(2.0, (X.shape[0] - 1) / 3.0)))
        return TSNE(
            n_components=2,
            perplexity=perp,
            init="pca",
            random_state=seed,
            n_jobs=1,
            max_iter=int(tsne_max_iter),
        ).fit_transform(X)
    if method == "umap":
        import umap

        return umap.UMAP(
            n_neighbors=int(min(n_neighbors, X.shape[0] - 1)), random_state=seed, n_jobs=1
        ).fit_transform(X)
    raise ValueError(f"method must be 'tsne' or 'umap', got {method!r}")


def embed_batch(
    spaces: list[np.ndarray], method: str, threads: int | None = None, **kwargs
) -> list[np.ndarray]:
    """:func:`embed_2d` of several matrices with one method (one process compiles UMAP once).

    ``threads`` caps OpenMP/BLAS threads: when two processes share two cores, OpenMP loops
    with 2 threads each (scikit-learn's t-SNE) wait at every barrier for a descheduled
    thread and run many times slower than with 1.
    """
    from threadpoolctl import threadpool_limits

    out = []
    with threadpool_limits(limits=threads):
        for X in spaces:
            out.append(embed_2d(X, method, **kwargs))
            log.info("%s embedding of %d x %d done", method, *np.shape(X))
    return out


def warm_up_umap() -> bool:
    """Compile umap-learn's numba kernels on a tiny problem (run early in a worker process)."""
    rng = np.random.default_rng(0)
    embed_2d(rng.normal(size=(60, 5)), "umap", seed=0, n_neighbors=10)
    return True


class EmbeddingRunner:
    """Run all UMAPs in one worker process while t-SNEs run here: two cores, same results.

    Call :meth:`start` early (the worker imports umap-learn and compiles its kernels while
    the caller does other work), then :meth:`run`. With ``n_jobs=1`` everything runs in
    this process. Results do not depend on ``n_jobs`` (every embedding is seeded).
    """

    def __init__(self, n_jobs: int = 2):
        self.n_jobs = n_jobs
        self._pool = None

    def start(self) -> EmbeddingRunner:
        if self.n_jobs > 1 and self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: the parent may already run numba/OpenMP threads
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            self._warm = self._pool.submit(warm_up_umap)
        return self

    def run(
        self, spaces: dict[str, np.ndarray], methods=("tsne", "umap"), **kwargs
    ) -> dict[str, dict[str, np.ndarray]]:
        """``{space: {method: coords}}`` for every matrix in ``spaces``."""
        names = list(spaces)
        mats = [spaces[n] for n in names]
        out: dict[str, dict[str, np.ndarray]] = {n: {} for n in names}
        fut = None
        if "umap" in methods and self._pool is not None:
            fut = self._pool.submit(embed_batch, mats, "umap", threads=1, **kwargs)
        threads = 1 if self._pool is not None else None
        for meth in methods:
            if meth == "umap" and fut is not None:
                continue
            for n, c in zip(names, embed_batch(mats, meth, threads=threads, **kwargs), strict=True):
                out[n][meth] = c
        if fut is not None:
            for n, c in zip(names, fut.result(), strict=True):
                out[n]["umap"] = c
        return {n: {m: out[n][m] for m in methods} for n in names}

    def close(self) -> None:
        if self._pool is not None:
            # after an error the warm-up may still run: do not wait for it
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def neighbour_sources(X: np.ndarray, k: int) -> np.ndarray:
    """Indices of each row's ``k`` nearest other rows (Euclidean), shape (n, k)."""
    nn = NearestNeighbors(n_neighbors=k + 1).fit(X)
    idx = nn.kneighbors(X, return_distance=False)
    # drop self (ties with duplicates may put self later: remove it wherever it is)
    out = np.empty((X.shape[0], k), dtype=int)
    for i, row in enumerate(idx):
        row = row[row != i]
        out[i] = row[:k]
    return out


def mixing_fraction(X: np.ndarray, source: np.ndarray, query: str, other: str, k: int = 15):
    """Per ``query`` cell, the fraction of its ``k`` nearest neighbours from ``other``.

    Returns
    -------
    frac : ndarray
        One value per ``query`` row.
    expected : float
        The fraction under perfect mixing: share of ``other`` among the other cells.
    """
    source = np.asarray(source)
    nbr = neighbour_sources(X, k)
    q = np.flatnonzero(source == query)
    frac = (source[nbr[q]] == other).mean(axis=1)
    expected = float((source == other).sum() / (len(source) - 1))
    return frac, expected


def joint_mixing(
    X: np.ndarray, source: np.ndarray, labels: np.ndarray, n_pcs: int, k: int, seed: int
) -> tuple[dict, dict]:
    """Mixing and Exc/Inh label transfer in each joint space (before/after correction).

    Parameters
    ----------
    X : ndarray
        Predicted and measured cells stacked, on the shared genes.
    source : ndarray of str
        ``predicted`` / ``measured`` per row.
    labels : ndarray of str
        Exc/Inh per row (empty = unknown, not scored).
    n_pcs, k, seed : int
        Dimensions of the joint space, neighbours, PCA seed.

    Returns
    -------
    mixing, transfer : dict
        Keyed by correction (:data:`CORRECTIONS`).
    """
    mixing, transfer = {}, {}
    for corr_name in CORRECTIONS:
        joint = joint_space(X, source, corr_name, n_components=n_pcs, seed=seed)
        frac, expected = mixing_fraction(joint, source, "predicted", "measured", k=k)
        mixing[corr_name] = {
            "mean_fraction_measured": float(frac.mean()),
            "median_fraction_measured": float(np.median(frac)),
            "frac_cells_with_no_measured_neighbour": float((frac == 0).mean()),
            "expected_if_mixed": expected,
            "n_dims": int(joint.shape[1]),
        }
        transfer[corr_name] = label_transfer(joint, source, labels, k=k)
        log.info(
            "%s: mixing %.3f (expected %.3f), Exc/Inh transfer accuracy %.3f",
            corr_name,
            frac.mean(),
            expected,
            transfer[corr_name]["accuracy"],
        )
    return mixing, transfer


def subsample(index: pd.Index, n_max: int, seed: int) -> pd.Index:
    """Seeded subsample of at most ``n_max`` labels, kept in the original order."""
    if n_max <= 0 or len(index) <= n_max:
        return index
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(index), size=n_max, replace=False))
    return index[pick]


__all__ = [
    "CORRECTIONS",
    "EmbeddingRunner",
    "embed_2d",
    "embed_batch",
    "joint_mixing",
    "joint_space",
    "mixing_fraction",
    "neighbour_sources",
    "subsample",
    "zscore_columns",
    "zscore_per_source",
]
