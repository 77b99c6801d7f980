"""Sparsemax and sparsestmax: Euclidean projections onto the simplex, and onto the simplex
minus an open ball around its centre.

Sparsemax: Martins and Astudillo, "From Softmax to Sparsemax" (ICML 2016). Sparsestmax:
Shao et al., "SSN: Learning Sparse Switchable Normalization via SparsestMax" (CVPR 2019),
as TrilevelNAS uses it (Wu et al., papers/002_1aa51cbec79c1574.txt, Eq. 2; FACTS.md §4):

    F(beta, r) = argmin_{q in D_r} ||q - beta||^2,
    D_r = {q : 1'q = 1, q >= 0, ||q - u|| >= r},   u = 1/K (the centre of the simplex).

The procedure FACTS.md §4 states (w = sparsemax(beta); if ||w - u|| < r move w radially to
``u + r (w - u) / ||w - u||`` and project back onto the simplex, repeating for general K) is
:func:`sparsestmax_radial`. :func:`sparsestmax` computes the same point exactly, in one pass,
from the derivation below (tests/test_sparsestmax.py checks both against an independent
constrained optimiser).

Derivation. Let w = sparsemax(beta) = P(beta), the projection onto the simplex D.

1. If ||w - u|| >= r, w is feasible and minimises ||q - beta|| over all of D, so F = w.
2. Otherwise the minimiser q* (D_r is compact and, for r up to the circumradius, not
   empty) lies on the sphere ||q - u|| = r: if it were strictly outside the ball, only the
   simplex would constrain it locally, so it would be a local, hence (convexity) the
   global, minimiser of ||q - beta||^2 over D, i.e. w, which is inside the ball.
3. On that sphere (within the hyperplane 1'q = 1) ||q||^2 = r^2 + 1/K =: rho^2 is constant,
   so ||q - beta||^2 = rho^2 - 2 beta'q + ||beta||^2: minimising it means maximising beta'q
   over D intersected with the sphere. Relaxing the sphere to the ball ||q|| <= rho gives a
   convex problem (a linear objective over a convex set) whose KKT conditions, with a
   multiplier eta > 0 on the ball, read beta - 2 eta q - nu 1 + lambda = 0, lambda >= 0,
   lambda'q = 0, i.e.

       q(c) = (beta - c)_+ / sum_i (beta_i - c)_+

   for a threshold c, with ||q(c)|| = rho. Such a point solves the relaxation, is on the
   sphere, hence solves the original problem: the answer is the member of the family q(c)
   (c = the sparsemax threshold gives w, c -> the largest beta gives the vertex) at distance
   r from u.
4. f(c) = ||q(c)||^2 is continuous and nondecreasing in c: with a_i = beta_i - c on the
   support (n entries), df/dc = 2 (n sum a^2 - (sum a)^2) / (sum a)^3 >= 0 (Cauchy-Schwarz).
   So the support of q* is {i : beta_i > c*}, and beta_(j) (the j-th largest) is in it iff
   f(beta_(j)) > rho^2: the support size k is the number of such j (the top values always
   count). On that support, with m and v the mean and variance of the top k values,
   f = 1/k + v / (k (m - c)^2), so  m - c* = sqrt(v / (k rho^2 - 1))  and
   q*_i = (beta_i - c*) / (k (m - c*)) on the top k.

   The radial step of FACTS.md §4 stays in this family (on the support of w it scales
   beta - c, outside it the coordinates go negative and are cut), never leaves the ball
   (the projection is non-expansive and u is in D), and its fixed point is on the sphere:
   the iteration converges to q* (geometrically, not in finitely many steps in general).

Edge cases, each a documented choice:

- r <= 0: plain sparsemax. r >= the circumradius sqrt((K - 1) / K): only the vertices are
  at that distance (and for larger r, as the released schedule reaches, D_r is empty): the
  one-hot vector of the largest beta (the first, on ties), whose gradient is zero.
- Ties among the largest beta with rho^2 above 1 / (their number): the minimiser is not
  unique (every point of their face at distance r is optimal). It is broken towards the
  lower index, as the limit of adding an infinitesimal decreasing ramp to the tied values
  (q* of the ramp (n-1, ..., 1, 0) on the tied entries). When rho^2 is exactly 1/n, the
  answer is uniform on the n tied entries.

Autograd runs through the closed form (sort, gather, scatter), so the gradient is the
projection's Jacobian on the active piece; it is zero in the one-hot and tie-broken cases.
Everything works on the last dimension of a tensor of any shape.

Radius schedule (:func:`radius`): the paper (section 4.1) raises r linearly from 0 to the
circumradius r_c; the code attributed to the authors sets r = iteration / total, 0 to 1,
past r_c at the end (FACTS.md §4). Mode "paper" is the default, "released" the named option.
"""

from __future__ import annotations

import math

import torch

from srnas.errors import SrnasError

RADIUS_MODES = ("paper", "released")


def circumradius(K: int) -> float:
    """Distance from the centre of the (K-1)-simplex to a vertex: sqrt((K - 1) / K)."""
    return math.sqrt((K - 1) / K)


def _as_float(z) -> torch.Tensor:
    z = torch.as_tensor(z)
    if not z.is_floating_point():
        z = z.to(torch.get_default_dtype())
    if z.dim() == 0 or z.shape[-1] == 0:
        raise SrnasError(f"sparsemax/sparsestmax: expected a tensor with a non-empty last dimension, "
                         f"got shape {tuple(z.shape)}")
    return z


def sparsemax(z) -> torch.Tensor:
    """Euclidean projection of ``z`` onto the probability simplex, over the last dimension
    (Martins and Astudillo 2016, Algorithm 1): (z - tau)_+ with tau from the sorted sums."""
    z = _as_float(z)
    K = z.shape[-1]
    zs, _ = torch.sort(z, dim=-1, descending=True)
    k = torch.arange(1, K + 1, dtype=z.dtype, device=z.device)
    cum = zs.cumsum(-1)
    support = (1 + k * zs > cum).sum(-1, keepdim=True)           # a prefix of the sorted values
    tau = (cum.gather(-1, support - 1) - 1) / support.to(z.dtype)
    return torch.clamp(z - tau, min=0)


def _sphere_point(zs: torch.Tensor, rho2: float) -> torch.Tensor:
    """q* of the module docstring (step 4) for rows ``zs`` sorted in descending order
    (shape (N, K)): the member of q(c) with ||q||^2 = rho2, in the same sorted order."""
    N, K = zs.shape
    # f at every breakpoint c = zs[:, j]: support = the values strictly above it
    a = torch.relu(zs.unsqueeze(-2) - zs.unsqueeze(-1))            # a[n, j, i] = (zs_i - zs_j)_+
    s1, s2 = a.sum(-1), (a * a).sum(-1)
    counted = (s1 == 0) | (s2 > rho2 * s1 * s1)
    k = counted.sum(-1, keepdim=True)                               # support size, (N, 1)
    kf = k.to(zs.dtype)
    mask = torch.arange(K, device=zs.device).unsqueeze(0) < k
    m = (zs * mask).sum(-1, keepdim=True) / kf
    v = (((zs - m) * mask) ** 2).sum(-1, keepdim=True) / kf
    denom = kf * rho2 - 1
    uniform = denom <= 1e-12 * kf                                   # rho^2 = 1/k: the k values' plateau
    tied = (v == 0) & ~uniform                                      # tied maxima, rho^2 > 1/k
    ok = ~(uniform | tied)
    d = torch.sqrt(torch.where(ok, v, torch.ones_like(v)) / torch.where(ok, denom, torch.ones_like(denom)))
    q = torch.relu(zs - (m - d)) * mask
    q = q / q.sum(-1, keepdim=True)
    q = torch.where(uniform, mask / kf, q)
    if bool(tied.any()):
        rows = []
        for n in range(N):
            if tied[n, 0]:
                size = int(k[n, 0])
                ramp = torch.arange(size - 1, -1, -1, dtype=zs.dtype, device=zs.device).unsqueeze(0)
                sub = _sphere_point(ramp, rho2)[0]
                rows.append(torch.cat([sub, sub.new_zeros(K - size)]))
            else:
                rows.append(torch.zeros(K, dtype=zs.dtype, device=zs.device))
        q = torch.where(tied, torch.stack(rows), q)
    return q


def sparsestmax(beta, r: float) -> torch.Tensor:
    """The projection of ``beta`` onto the simplex minus the open ball of radius ``r``
    around its centre, over the last dimension (see the module docstring).

    ``r = 0``: sparsemax. ``r >= sqrt((K - 1) / K)``: one-hot at the (first) largest value.
    """
    z = _as_float(beta)
    r = float(r)
    if not math.isfinite(r):
        raise SrnasError(f"sparsestmax: radius must be a finite number, got {r!r}")
    K = z.shape[-1]
    w = sparsemax(z)
    if r <= 0:
        return w
    if r >= circumradius(K) - 1e-12:
        # locally constant: a zero gradient, still attached to the graph
        return torch.nn.functional.one_hot(z.argmax(-1), K).to(z.dtype) + 0.0 * z
    flat = z.reshape(-1, K)
    zs, order = torch.sort(flat, dim=-1, descending=True, stable=True)
    q = torch.zeros_like(flat).scatter(-1, order, _sphere_point(zs, r * r + 1.0 / K)).reshape(z.shape)
    inside = (w - 1.0 / K).pow(2).sum(-1, keepdim=True) < r * r
    return torch.where(inside, q, w)


def sparsestmax_radial(beta, r: float, steps: int = 1000, tol: float = 1e-12) -> torch.Tensor:
    """FACTS.md §4's procedure, iterated: w = sparsemax(beta); while ||w - u|| < r, w =
    sparsemax(u + r (w - u) / ||w - u||). Converges to :func:`sparsestmax` (see the module
    docstring; not at tied maxima, where w - u can be 0 or the iteration stalls on the tie).
    A reference for the tests; use :func:`sparsestmax`."""
    z = _as_float(beta)
    K = z.shape[-1]
    r = min(float(r), circumradius(K))
    u = 1.0 / K
    w = sparsemax(z)
    for _ in range(steps):
        dist = (w - u).pow(2).sum(-1, keepdim=True).sqrt()
        inside = dist < r - tol
        if not bool(inside.any()):
            break
        step = sparsemax(u + r * (w - u) / torch.where(inside, dist, torch.ones_like(dist)))
        w = torch.where(inside, step, w)
    return w


def radius(step: int | float, total: int | float, K: int, mode: str = "paper") -> float:
    """The sparsestmax radius at ``step`` of ``total`` for K candidates.

    ``paper`` (section 4.1): linear from 0 to the circumradius sqrt((K - 1) / K).
    ``released`` (FACTS.md §4, the code attributed to the authors): step / total, from 0 to
    1, i.e. beyond the circumradius (one-hot) for the last part of the search.
    Steps past ``total`` keep the final radius.
    """
    if mode not in RADIUS_MODES:
        raise SrnasError(f"sparsestmax radius: unknown mode {mode!r}; known: {', '.join(RADIUS_MODES)}")
    if isinstance(K, bool) or not isinstance(K, int) or K < 1:
        raise SrnasError(f"sparsestmax radius: K must be a positive integer, got {K!r}")
    if not total > 0:
        raise SrnasError(f"sparsestmax radius: total must be > 0, got {total!r}")
    if not step >= 0:
        raise SrnasError(f"sparsestmax radius: step must be >= 0, got {step!r}")
    frac = min(float(step) / float(total), 1.0)
    return frac * circumradius(K) if mode == "paper" else frac


__all__ = ["RADIUS_MODES", "circumradius", "radius", "sparsemax", "sparsestmax", "sparsestmax_radial"]
