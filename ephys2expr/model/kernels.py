"""Numba kernels of the solver: exact elastic-net paths for many genes on one Gram matrix.

Private to :mod:`ephys2expr.model.estimator` (which documents the objectives). For each
gene, an active-set (sign-pattern) method solves the problem exactly on the shared Gram
matrix, warm-started along a descending alpha path, with an exact all-zero (KKT) shortcut;
coordinate descent with an exact active-set polish is the rare fallback when an active
block is singular. Genes run in parallel (``numba.prange``) in blocks of 256 (every
n_blocks-th gene, for balance) so that the scratch arrays are allocated once per block.
"""

from __future__ import annotations

import numba
import numpy as np

from ephys2expr.model.active_set import _polish, active_set_solve


@numba.njit(cache=True)
def gene_scratch(p):
    """The scratch arrays :func:`one_gene` takes after its outputs (allocated once per
    block of genes): w, q, idx, mat, vec, qnew, theta, order, fact_state, dinv."""
    return (
        np.empty(p),
        np.empty(p),
        np.empty(p, dtype=np.int64),
        np.empty((p, p)),
        np.empty(p),
        np.empty(p),
        np.empty(p),
        np.empty(p, dtype=np.int64),
        np.empty(2),
        np.empty(p),
    )


@numba.njit(cache=True, parallel=True, error_model="numpy", fastmath=True)
def cd_path_kernel(gram, xty, yscale, l1, l2, coef_init, tol, max_iter, coefs, n_iter, conv):
    """Elastic-net path for every gene (row of ``xty``): active set, CD as fallback.

    gram (p, p); xty (G, p); yscale (G,); l1, l2 (1 or G, A) descending along A;
    coef_init (G, p) or (0, p); outputs coefs (G, A, p), n_iter (G,), conv (G,).
    """
    n_genes, p = xty.shape
    stride = 1 if l1.shape[0] > 1 else 0
    use_init = coef_init.shape[0] == n_genes
    problem = (gram, xty, yscale, l1, l2, tol, max_iter)
    # genes per work unit: scratch arrays are allocated once per block. A block takes every
    # n_blocks-th gene, not a run of neighbours: prange splits the blocks statically between
    # threads, and the hard genes cluster in the gene order (on the real table the first half
    # needs 60 % of the steps), so runs left one thread waiting
    block = 256
    n_blocks = (n_genes + block - 1) // block
    for blk in numba.prange(n_blocks):
        scratch = gene_scratch(p)
        for g in range(blk, n_genes, n_blocks):
            # problem, gene index, outputs, then the block's scratch arrays
            one_gene(g, g * stride, problem, coef_init, use_init, coefs[g], n_iter, conv, scratch)


@numba.njit(cache=True, parallel=True, error_model="numpy", fastmath=True)
def path_sse_kernel(gram, xty, yscale, l1, l2, tol, max_iter, vgram, vxty, vyy, sse, n_iter, conv):
    """:func:`cd_path_kernel` scored on validation rows instead of returned: adds each
    gene's weighted validation sum of squares at every alpha to ``sse`` (G, A).

    With the validation rows centred on the training means (``Xv``, ``yv``), the error of
    ``b`` is ``b'Vb - 2 b'h + yv'W yv`` for ``V = Xv'W Xv`` (``vgram``, p x p, shared),
    ``h = Xv'W yv`` (``vxty`` (G, p)) and ``yv'W yv`` (``vyy`` (G,)): O(k^2) per alpha for
    ``k`` active features, whatever the number of validation rows, and the (G, A, p)
    coefficient array is never written (it was most of the memory traffic of a fold).
    """
    n_genes, p = xty.shape
    n_alpha = l1.shape[1]
    stride = 1 if l1.shape[0] > 1 else 0
    empty = np.zeros((0, p))
    problem = (gram, xty, yscale, l1, l2, tol, max_iter)
    block = 256  # genes strided over blocks, as in cd_path_kernel
    n_blocks = (n_genes + block - 1) // block
    for blk in numba.prange(n_blocks):
        scratch = gene_scratch(p)
        idx = scratch[2]  # reused below for the active features
        out = np.empty((n_alpha, p))
        for g in range(blk, n_genes, n_blocks):
            one_gene(g, g * stride, problem, empty, False, out, n_iter, conv, scratch)
            h = vxty[g]
            for a in range(n_alpha):
                b = out[a]
                k = 0
                for j in range(p):
                    if b[j] != 0.0:
                        idx[k] = j
                        k += 1
                s = 0.0
                for u in range(k):
                    j = idx[u]
                    t = -2.0 * h[j]
                    for v in range(k):
                        t += vgram[j, idx[v]] * b[idx[v]]
                    s += b[j] * t
                sse[g, a] += vyy[g] + s


@numba.njit(cache=True, error_model="numpy", fastmath=True)
def one_gene(g, gi, problem, coef_init, use_init, out, n_iter, conv, scratch):
    """The whole alpha path of gene ``g`` into ``out`` (n_alphas, p).

    ``problem`` is ``(gram, xty, yscale, l1, l2, tol, max_iter)`` as :func:`cd_path_kernel`
    takes them (``gi``: the row of ``l1``/``l2``); ``scratch``: the arrays of
    :func:`gene_scratch`, reused across genes.
    """
    gram, xty, yscale, l1, l2, tol, max_iter = problem
    w, q, idx, mat, vec, qnew, theta, order, fact_state, dinv = scratch
    p = w.shape[0]
    n_alpha = l1.shape[1]
    c = xty[g]
    fact_state[0] = -1.0
    fact_state[1] = 0.0
    for j in range(p):
        w[j] = coef_init[g, j] if use_init else 0.0
    for j in range(p):
        t = c[j]
        for k in range(p):
            t -= gram[j, k] * w[k]
        q[j] = t
    cmax = 0.0
    for j in range(p):
        if abs(c[j]) > cmax:
            cmax = abs(c[j])
    thr = tol * yscale[g]
    total = 0
    ok = True
    for a in range(n_alpha):
        lam1 = l1[gi, a]
        lam2 = l2[gi, a]
        if cmax <= lam1:
            # KKT: b = 0 is optimal (the ridge part has zero gradient there)
            for j in range(p):
                w[j] = 0.0
                q[j] = c[j]
                out[a, j] = 0.0
            continue
        steps = active_set_solve(
            gram, c, lam1, lam2, w, q, theta, order, mat, dinv, qnew, vec, 8 * p + 20, fact_state
        )
        if steps > 0:
            total += steps
            for j in range(p):
                out[a, j] = w[j]
            continue
        # rare fallback (singular active block): coordinate descent from where we are
        fact_state[0] = -1.0  # the polish below overwrites mat and qnew
        for j in range(p):
            t = c[j]
            for k in range(p):
                t -= gram[j, k] * w[k]
            q[j] = t
        done = False
        next_polish = 1
        for it in range(max_iter):
            maxdw = 0.0
            support_changed = False
            for j in range(p):
                den = gram[j, j] + lam2
                if den <= 0.0:
                    continue  # a constant column: its coefficient stays 0
                wj = w[j]
                z = q[j] + gram[j, j] * wj
                if z > lam1:
                    new = (z - lam1) / den
                elif z < -lam1:
                    new = (z + lam1) / den
                else:
                    new = 0.0
                d = new - wj
                if d != 0.0:
                    if (new == 0.0) != (wj == 0.0):
                        support_changed = True
                    for k in range(p):
                        q[k] -= gram[k, j] * d
                    w[j] = new
                    ad = abs(d) * np.sqrt(gram[j, j])
                    if ad > maxdw:
                        maxdw = ad
            total += 1
            small = maxdw <= thr
            if small or (not support_changed and it + 1 >= next_polish):
                if _polish(gram, c, w, q, lam1, lam2, idx, mat, vec, qnew):
                    done = True
                    break
                next_polish = 2 * (it + 1)  # back off: the support is not settled yet
            if small:
                done = True
                break
        if not done:
            ok = False
        for j in range(p):
            out[a, j] = w[j]
    n_iter[g] = total
    conv[g] = ok
