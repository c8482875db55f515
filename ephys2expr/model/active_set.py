"""Numba kernels of one gene's exact solve: the active-set (sign-pattern) method and the
exact polish of a coordinate-descent solution, both on the shared Gram matrix.

Called by the path kernels of :mod:`ephys2expr.model.kernels` (and the permutation null's
kernel in :mod:`ephys2expr.train.cv._null_kernel`); split from them only to keep each file
readable.
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
FASTMATH = {"nnan", "ninf", "nsz", "arcp", "contract", "afn"}


@numba.njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def active_set_solve(gram, c, lam1, lam2, w, q, theta, order, L, dinv, z, v, max_steps, fact_state):
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
