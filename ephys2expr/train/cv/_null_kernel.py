"""Numba kernel of the permutation null: the outer CV of many (gene, permutation) pairs at once.

Private to :mod:`ephys2expr.train.cv.null`. Under a permutation only the rows of the targets
move: each fold's standardisation, Gram matrix and test rows are fixed, so the caller
computes them once (:func:`ephys2expr.train.cv.null.fold_designs`), and a pair needs, per fold,
only ``X'Wy/S`` (p numbers), one single-alpha solve and the held-out predictions - no
per-fold arrays, no Python between folds.

* ``X'Wy/S`` of every fold comes from sums over all rows minus the fold's test rows, in a
  globally standardised design: fold ``k`` trains on all rows but its test rows, so
  ``sum_tr w x y = sum_all w x y - sum_te w x y`` (O(p) per fold for leave-one-out instead of
  O(n p)); the fold's own centring and scale are applied afterwards (they are affine).
* With many test rows per fold (per-cell data: hundreds of cells a fold) the rows are
  visited in fold order instead: one pass over each fold's test rows gives its sums of
  ``w x y``, ``te_x y``, ``w y``, ``y`` and ``y^2`` (the training sums are the totals minus
  these, since the folds partition the rows), and the fold's test error comes from the
  expansion of ``|y - ybar - te_x b|^2`` with the fold's ``te_x' te_x``: O(p^2) per fold
  instead of O(test rows x p) (measured on the Scala cells: the null 1.4-1.9x faster, p-values
  identical). Leave-one-out (one row a fold) keeps the per-row arithmetic, cheaper there.
* The solve is the solver's exact active-set (sign-pattern) method
  (:func:`~ephys2expr.model.active_set.active_set_solve`, with the solver's whole path,
  :func:`~ephys2expr.model.kernels.one_gene`, as the fallback), warm-started from the
  pair's solution in the previous fold, the folds visited in decreasing order of the gene's
  alpha (folds share most training rows, and the next fold's alpha is the nearest smaller
  one, so the sign pattern mostly carries over). Folds with a singular Gram matrix (fewer
  training rows than features: the lasso optimum is not unique) run the solver's own path
  from zero instead, as the estimator does.
* A permutation that only swaps equal values of a gene (tied expression, e.g. zeros)
  leaves its data unchanged: its r2 is the observed one exactly (an exact tie must count as
  one, not depend on rounding).
* A pair stops as soon as its exceedance is decided: the pooled squared error only grows
  fold by fold, so once ``1 - sse / sst`` is below the observed r2 (minus the 1e-12 tie
  slack) the full r2 would be too. A permuted gene usually gets there after a fraction of
  the folds (the higher its observed r2, the sooner), and the p-values are unchanged. What
  is lost is the permuted r2 itself, so the null reports no mean null r2.

Where the optimum is unique (a non-singular active block), the start and the order of the
sums change the work and the rounding (~1e-15 in r2 on the real data), not the solution.
"""

from __future__ import annotations

import numba
import numpy as np

from ephys2expr.model.active_set import FASTMATH, active_set_solve
from ephys2expr.model.kernels import gene_scratch, one_gene


@numba.njit(cache=True, parallel=True, error_model="numpy", fastmath=FASTMATH)
def null_r2_kernel(
    Yt,
    pair_gene,
    pair_perm,
    perms,
    fold_order,
    wx,
    w,
    fold_w,
    fold_m,
    fold_s,
    te_ptr,
    te_rows,
    te_x,
    grams,
    singular,
    l1,
    l2,
    tr_ptr,
    tr_rows,
    tol,
    max_iter,
    sums_x,
    te_sum,
    te_gram,
    observed,
    out,
):
    """Pooled out-of-fold r2 of each pair c: gene ``pair_gene[c]`` under ``perms[pair_perm[c]]``.

    Yt (G, n): targets, genes x rows. perms (B, n). fold_order (G, K): the order each gene
    visits the folds. wx (n, p): weight x globally standardised design; w (n,) weights.
    Fold k: fold_w[k] = sum of its training weights, fold_m[k] (p,) their weighted mean of the
    design, fold_s[k] (p,) its standardisation scale (in global units); test rows
    ``te_rows[te_ptr[k]:te_ptr[k+1]]`` with te_x (their standardised, centred design: a
    prediction is ``ybar + te_x b``); grams (K, p, p); singular (K,) folds whose Gram matrix
    is singular (fewer training rows than features: the lasso optimum is not unique, so these
    folds run the solver's own path from zero, as the estimator does); l1, l2 (K, G); training
    rows ``tr_rows[tr_ptr[k]:tr_ptr[k+1]]`` (only for the solver's fallback, which needs the
    spread of y). sums_x (n, 2p + 1) - or (0, 2p + 1): per-row arithmetic instead - the rows
    in ``te_rows`` order (the folds' test rows, which must partition the rows) of ``wx``,
    ``te_x`` and ``w`` side by side; te_sum (K, p) and te_gram (K, p, p): each fold's
    ``te_x`` column sums and ``te_x' te_x``. observed (G,): the real-data r2, the answer
    for a permutation that leaves the gene's values unchanged. out (C,) receives r2 (NaN for
    a constant gene) - or, for a pair whose r2 falls below ``observed - 1e-12`` before its
    last fold, an upper bound of it that is also below: the exceedance is decided, so its
    remaining folds are skipped.
    """
    n_pairs = pair_gene.shape[0]
    n = Yt.shape[1]
    n_folds, p = fold_m.shape
    use_sums = sums_x.shape[0] > 0
    # pairs strided over blocks (see cd_path_kernel: a gene's pairs are neighbours, and
    # genes differ in cost)
    block = 64
    n_blocks = (n_pairs + block - 1) // block
    for blk in numba.prange(n_blocks):
        y = np.empty(n)
        s_all = np.empty(p)
        xty = np.empty((1, p))
        ys = np.empty(1)
        lam1 = np.empty((1, 1))
        lam2 = np.empty((1, 1))
        init = np.zeros((1, p))
        coefs = np.empty((1, 1, p))
        n_iter = np.zeros(1, dtype=np.int64)
        conv = np.zeros(1, dtype=np.bool_)
        scratch = gene_scratch(p)
        wv, q, idx, mat, vec, qnew, theta, order, fact_state, dinv = scratch
        ysort = np.empty(n)
        fa = np.empty((n_folds, p))  # per fold: sum over test rows of wx y
        fc = np.empty((n_folds, p))  # ... of te_x y
        fb = np.empty(n_folds)  # ... of w y
        fd = np.empty(n_folds)  # ... of y
        fe = np.empty(n_folds)  # ... of y^2
        acc = np.empty(2 * p + 1)
        for c in range(blk, n_pairs, n_blocks):
            g = pair_gene[c]
            perm = perms[pair_perm[c]]
            mean = 0.0
            same = True
            for i in range(n):
                y[i] = Yt[g, perm[i]]
                mean += y[i]
                same = same and y[i] == Yt[g, i]
            if same:
                # the permutation only swapped equal values (tied expression, e.g. zeros):
                # the same data, so exactly the observed r2 - an exact tie, not one within
                # rounding
                out[c] = observed[g]
                continue
            mean /= n
            sst = 0.0
            t_all = 0.0
            for j in range(p):
                s_all[j] = 0.0
            for i in range(n):
                y[i] -= mean  # centred: the sums below stay small (no cancellation)
            if use_sums:
                # every fold's test-row sums in one pass over its rows (the folds
                # partition the rows, so the totals are their sums)
                for r in range(n):
                    ysort[r] = y[te_rows[r]]
                for k in range(n_folds):
                    for j in range(2 * p + 1):
                        acc[j] = 0.0
                    t = 0.0
                    t2 = 0.0
                    for r in range(te_ptr[k], te_ptr[k + 1]):
                        yr = ysort[r]
                        t += yr
                        t2 += yr * yr
                        for j in range(2 * p + 1):
                            acc[j] += sums_x[r, j] * yr
                    for j in range(p):
                        fa[k, j] = acc[j]
                        fc[k, j] = acc[p + j]
                        s_all[j] += acc[j]
                    fb[k] = acc[2 * p]
                    fd[k] = t
                    fe[k] = t2
                    t_all += fb[k]
                    sst += t2
            else:
                for i in range(n):
                    sst += y[i] * y[i]
                    t_all += w[i] * y[i]
                    for j in range(p):
                        s_all[j] += wx[i, j] * y[i]
            for j in range(p):
                wv[j] = 0.0
            sse = 0.0
            bound = observed[g] - 1e-12  # the exceedance test of permutation_null
            for kk in range(n_folds):
                k = fold_order[g, kk]
                if use_sums:
                    t_tr = t_all - fb[k]
                    for j in range(p):
                        xty[0, j] = s_all[j] - fa[k, j]
                else:
                    t_tr = t_all
                    for j in range(p):
                        xty[0, j] = s_all[j]
                    for r in range(te_ptr[k], te_ptr[k + 1]):
                        i = te_rows[r]
                        t_tr -= w[i] * y[i]
                        for j in range(p):
                            xty[0, j] -= wx[i, j] * y[i]
                ybar = t_tr / fold_w[k]
                cmax = 0.0
                for j in range(p):
                    xty[0, j] = (xty[0, j] / fold_w[k] - fold_m[k, j] * ybar) / fold_s[k, j]
                    cmax = max(cmax, abs(xty[0, j]))
                a1 = l1[k, g]
                a2 = l2[k, g]
                gram = grams[k]
                if cmax <= a1:  # KKT: all-zero is optimal, as in the solver
                    for j in range(p):
                        wv[j] = 0.0
                else:
                    steps = 0
                    if not (singular[k] and a2 == 0.0):  # (q = c - G w is set by step 1)
                        fact_state[0] = -1.0  # each fold has its own Gram matrix
                        steps = active_set_solve(
                            gram,
                            xty[0],
                            a1,
                            a2,
                            wv,
                            q,
                            theta,
                            order,
                            mat,
                            dinv,
                            qnew,
                            vec,
                            8 * p + 20,
                            fact_state,
                        )
                    if steps == 0:  # singular block or too many steps: the solver's own path
                        var = 0.0
                        for r in range(tr_ptr[k], tr_ptr[k + 1]):
                            i = tr_rows[r]
                            var += w[i] * (y[i] - ybar) ** 2
                        ys[0] = np.sqrt(var / fold_w[k])
                        lam1[0, 0] = a1
                        lam2[0, 0] = a2
                        for j in range(p):
                            init[0, j] = 0.0
                        problem = (gram, xty, ys, lam1, lam2, tol, max_iter)
                        one_gene(0, 0, problem, init, True, coefs[0], n_iter, conv, scratch)
                        for j in range(p):
                            wv[j] = coefs[0, 0, j]
                if use_sums:
                    # sum (y - ybar - te_x b)^2 expanded: O(p^2), not O(rows x p)
                    n_te = te_ptr[k + 1] - te_ptr[k]
                    t = fe[k] - 2.0 * ybar * fd[k] + n_te * ybar * ybar
                    for j in range(p):
                        if wv[j] != 0.0:
                            u = fc[k, j] - ybar * te_sum[k, j]
                            for m in range(p):
                                u -= 0.5 * te_gram[k, j, m] * wv[m]
                            t -= 2.0 * wv[j] * u
                    sse += max(t, 0.0)  # a sum of squares: rounding must not lower sse
                else:
                    for r in range(te_ptr[k], te_ptr[k + 1]):
                        pred = ybar
                        for j in range(p):
                            pred += te_x[r, j] * wv[j]
                        sse += (y[te_rows[r]] - pred) ** 2
                # the pooled sse only grows with more folds (adding a square never lowers a
                # float sum), so once this r2 bound is below the observed r2 the pair cannot
                # reach it: its remaining folds would not change its exceedance
                if sst > 0.0 and 1.0 - sse / sst < bound:
                    break
            out[c] = 1.0 - sse / sst if sst > 0.0 else np.nan
