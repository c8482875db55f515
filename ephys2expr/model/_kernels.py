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

# --------------------------------------------------------------------------------------
# numba kernel: coordinate descent on the Gram matrix, genes in parallel
# --------------------------------------------------------------------------------------


@numba.njit(cache=True, error_model="numpy", fastmath=True)
def _polish(gram, c, w, q, lam1, lam2, idx, mat, vec, qnew):
    """Exact solution on the current support/signs of ``w``; True (and ``w``, ``q``
    overwritten) only if it satisfies the KKT conditions of the full problem."""
    p = w.shape[0]
    k = 0
    for j in range(p):
        if w[j] != 0.0:
            idx[k] = j
            k += 1
    if k == 0:
        return False
    # M = G_AA + lam2 I,  rhs = c_A - lam1 * sign(w_A)
    for a in range(k):
        ja = idx[a]
        for b in range(k):
            mat[a, b] = gram[ja, idx[b]]
        mat[a, a] += lam2
        vec[a] = c[ja] - (lam1 if w[ja] > 0.0 else -lam1)
    # in-place Cholesky; give up on a (numerically) singular active block
    for a in range(k):
        s = mat[a, a]
        for m in range(a):
            s -= mat[a, m] * mat[a, m]
        if s <= 1e-12 * (gram[idx[a], idx[a]] + lam2) or s <= 0.0:
            return False
        d = np.sqrt(s)
        mat[a, a] = d
        for b in range(a + 1, k):
            t = mat[b, a]
            for m in range(a):
                t -= mat[b, m] * mat[a, m]
            mat[b, a] = t / d
    for a in range(k):  # forward: L z = rhs
        t = vec[a]
        for m in range(a):
            t -= mat[a, m] * vec[m]
        vec[a] = t / mat[a, a]
    for a in range(k - 1, -1, -1):  # backward: L' v = z
        t = vec[a]
        for m in range(a + 1, k):
            t -= mat[m, a] * vec[m]
        vec[a] = t / mat[a, a]
    for a in range(k):  # the support's signs must be reproduced
        if vec[a] == 0.0 or (vec[a] > 0.0) != (w[idx[a]] > 0.0):
            return False
    for j in range(p):
        t = c[j]
        for a in range(k):
            t -= gram[j, idx[a]] * vec[a]
        qnew[j] = t
    # inactive coordinates: |c_j - G_jA v| <= lam1 (relative slack for rounding only)
    slack = 1e-9 * lam1 + 1e-13
    for j in range(p):
        if w[j] == 0.0 and abs(qnew[j]) > lam1 + slack:
            return False
    for j in range(p):
        w[j] = 0.0
    for a in range(k):
        w[idx[a]] = vec[a]
    for j in range(p):
        q[j] = qnew[j]
    return True


# fastmath without "reassoc" for the active-set step: its loops run 1-11 times, and
# vectorising their sums (what reassociation allows) only adds set-up code around them
# (measured on the null: ~15 % slower)
_FASTMATH = {"nnan", "ninf", "nsz", "arcp", "contract", "afn"}


@numba.njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _active_set(gram, c, lam1, lam2, w, q, theta, order, L, dinv, z, v, max_steps, fact_state):
    """Exact elastic net for one gene by an active-set (sign-pattern) method.

    Starting from ``w`` (any point whose signs define the initial active set, e.g. the
    solution at the previous alpha), repeat: solve exactly on the active set with its signs;
    if a coefficient would change sign, step to the first zero crossing and drop it;
    once sign-consistent, add the inactive coordinate that violates the KKT condition most.
    At a sign-consistent minimiser the added coordinate provably enters with the right sign
    (Schur complement argument, as in Lawson-Hanson NNLS), so every step makes progress.

    The Cholesky factor ``L`` of the active block is kept in the order variables entered
    (``order[:k]``), with the reciprocals of its diagonal (``dinv``: the triangular solves
    multiply instead of divide; divisions in a dependency chain were most of a step), and so
    is the forward solve ``z``: the right-hand side of a variable does not change while it
    stays active, so adding a variable extends both by one row (O(k^2)) and dropping one
    recomputes only the rows after it. ``fact_state`` = (rows of ``L``, the ``lam2`` they
    include), or -1 rows: the factor carries over to a next call on the same Gram matrix
    that starts from this call's solution (the next alpha of a path; only ``z`` is redone,
    ``lam1`` having changed); reset it (``fact_state[0] = -1``) when the Gram matrix
    changes. Returns the number of steps (> 0) on success, 0 if the caller should fall back
    to coordinate descent (singular active block, or ``max_steps`` reached).
    """
    p = w.shape[0]
    slack = 1e-10 * lam1 + 1e-14
    valid = int(fact_state[0])  # rows of L up to date: a prefix of order
    if valid < 0 or fact_state[1] != lam2:
        valid = 0  # nothing reusable (first use, new Gram matrix, or the ridge part changed)
    k = 0
    for j in range(p):
        theta[j] = 1.0 if w[j] > 0.0 else (-1.0 if w[j] < 0.0 else 0.0)
        if theta[j] != 0.0:
            k += 1
    for a in range(valid):
        if theta[order[a]] == 0.0:
            valid = 0
            break
    if valid != k:  # the factor fits only the active set it ended with (the last alpha's)
        valid = 0
        k = 0
        for j in range(p):
            if theta[j] != 0.0:
                order[k] = j
                k += 1
    zvalid = 0  # z depends on lam1, which changes between calls
    fact_state[0] = -1.0
    consistent = False
    for step in range(max_steps):
        if consistent:
            best = -1
            viol = slack
            for j in range(p):
                if theta[j] == 0.0 and abs(q[j]) - lam1 > viol:
                    viol = abs(q[j]) - lam1
                    best = j
            if best < 0:
                fact_state[0] = valid
                fact_state[1] = lam2
                return step + 1
            theta[best] = 1.0 if q[best] > 0.0 else -1.0
            order[k] = best
            k += 1
        if k == 0:
            for j in range(p):
                w[j] = 0.0
                q[j] = c[j]
            consistent = True
            continue
        for a in range(valid, k):  # new rows of the factor
            ja = order[a]
            for b in range(a):
                t = gram[ja, order[b]]
                for m in range(b):
                    t -= L[a, m] * L[b, m]
                L[a, b] = t * dinv[b]
            t = gram[ja, ja] + lam2
            for m in range(a):
                t -= L[a, m] * L[a, m]
            if t <= 1e-12 * (gram[ja, ja] + lam2) or t <= 0.0:
                return 0
            L[a, a] = np.sqrt(t)
            dinv[a] = 1.0 / L[a, a]
        valid = k
        for a in range(zvalid, k):  # new rows of the forward solve: L z = c_A - lam1 theta_A
            ja = order[a]
            t = c[ja] - lam1 * theta[ja]
            for m in range(a):
                t -= L[a, m] * z[m]
            z[a] = t * dinv[a]
        zvalid = k
        for a in range(k - 1, -1, -1):  # backward: L' v = z
            t = z[a]
            for m in range(a + 1, k):
                t -= L[m, a] * v[m]
            v[a] = t * dinv[a]
        tmin = 2.0
        amin = -1
        for a in range(k):
            ja = order[a]
            if v[a] * theta[ja] <= 0.0:
                den = w[ja] - v[a]
                t = w[ja] / den if den != 0.0 else 0.0
                if t < tmin:
                    tmin = t
                    amin = a
        if amin < 0:
            for a in range(k):
                w[order[a]] = v[a]
            consistent = True
        else:
            for a in range(k):
                ja = order[a]
                w[ja] += tmin * (v[a] - w[ja])
            w[order[amin]] = 0.0
            kept = 0
            for a in range(k):
                ja = order[a]
                if w[ja] * theta[ja] <= 0.0:  # zero (or rounding past zero): drop
                    w[ja] = 0.0
                    theta[ja] = 0.0
                    valid = min(valid, a)
                else:
                    order[kept] = ja
                    kept += 1
            k = kept
            zvalid = min(zvalid, valid)
            consistent = False
            continue  # the next step re-solves without looking at q
        # q = c - G_A w_A, as axpys over rows of the (symmetric) Gram matrix
        for j in range(p):
            q[j] = c[j]
        for a in range(k):
            ja = order[a]
            wa = v[a]
            for j in range(p):
                q[j] -= gram[ja, j] * wa
    return 0


@numba.njit(cache=True)
def gene_scratch(p):
    """The scratch arrays :func:`_one_gene` takes after its outputs (allocated once per
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
    # genes per work unit: scratch arrays are allocated once per block. A block takes every
    # n_blocks-th gene, not a run of neighbours: prange splits the blocks statically between
    # threads, and the hard genes cluster in the gene order (on the real table the first half
    # needs 60 % of the steps), so runs left one thread waiting
    block = 256
    n_blocks = (n_genes + block - 1) // block
    for blk in numba.prange(n_blocks):
        w, q, idx, mat, vec, qnew, theta, order, fact_state, dinv = gene_scratch(p)
        for g in range(blk, n_genes, n_blocks):
            # problem, gene index, outputs, then the block's scratch arrays
            _one_gene(
                g,
                g * stride,
                gram,
                xty,
                yscale,
                l1,
                l2,
                coef_init,
                use_init,
                tol,
                max_iter,
                coefs[g],
                n_iter,
                conv,
                w,
                q,
                idx,
                mat,
                vec,
                qnew,
                theta,
                order,
                fact_state,
                dinv,
            )


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
    block = 256  # genes strided over blocks, as in cd_path_kernel
    n_blocks = (n_genes + block - 1) // block
    for blk in numba.prange(n_blocks):
        w, q, idx, mat, vec, qnew, theta, order, fact_state, dinv = gene_scratch(p)
        out = np.empty((n_alpha, p))
        for g in range(blk, n_genes, n_blocks):
            _one_gene(
                g,
                g * stride,
                gram,
                xty,
                yscale,
                l1,
                l2,
                empty,
                False,
                tol,
                max_iter,
                out,
                n_iter,
                conv,
                w,
                q,
                idx,
                mat,
                vec,
                qnew,
                theta,
                order,
                fact_state,
                dinv,
            )
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
def _one_gene(
    g,
    gi,
    gram,
    xty,
    yscale,
    l1,
    l2,
    coef_init,
    use_init,
    tol,
    max_iter,
    out,
    n_iter,
    conv,
    w,
    q,
    idx,
    mat,
    vec,
    qnew,
    theta,
    order,
    fact_state,
    dinv,
):
    """The whole alpha path of gene ``g`` into ``out`` (n_alphas, p) (scratch arrays passed
    in, reused across genes)."""
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
        steps = _active_set(
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
