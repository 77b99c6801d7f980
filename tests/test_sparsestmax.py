"""Sparsemax and sparsestmax (TrilevelNAS Eq. 2, FACTS.md §4): hand values for K = 2 and 3,
general K against an independent constrained optimiser, the radial procedure, edge cases,
gradients and the radius schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from srnas.errors import SrnasError
from srnas.sparsestmax import circumradius, radius, sparsemax, sparsestmax, sparsestmax_radial

pytestmark = pytest.mark.usefixtures("one_thread")


def t(*values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def on_simplex(q: torch.Tensor) -> bool:
    return bool((q >= 0).all()) and torch.allclose(q.sum(-1), torch.ones(q.shape[:-1], dtype=q.dtype), atol=1e-12)


# -- sparsemax --------------------------------------------------------------------------------

def test_sparsemax_hand_values():
    # (1, 0.5, -1): support {1, 2}, tau = (1 + 0.5 - 1) / 2 = 0.25
    assert torch.allclose(sparsemax(t(1.0, 0.5, -1.0)), t(0.75, 0.25, 0.0), atol=1e-15)
    # all in the support: tau = (0.6 - 1) / 3
    assert torch.allclose(sparsemax(t(0.1, 0.2, 0.3)), t(0.1, 0.2, 0.3) + 0.4 / 3, atol=1e-15)
    # a gap of more than 1: the vertex
    assert torch.equal(sparsemax(t(0.0, 2.5, 1.0)), t(0.0, 1.0, 0.0))
    # last dimension of any shape; constant shifts do not matter
    z = torch.randn(2, 3, 6, dtype=torch.float64)
    out = sparsemax(z)
    assert out.shape == z.shape and on_simplex(out)
    assert torch.allclose(sparsemax(z + 7.0), out, atol=1e-12)
    assert torch.allclose(sparsemax(z[1, 2]), out[1, 2])


# -- K = 2 and K = 3 closed forms -------------------------------------------------------------

@pytest.mark.parametrize("beta, r, p", [
    # sparsemax p = (b1 - b2 + 1) / 2 = 0.55; distance sqrt(2) |p - 1/2| = 0.071 < 0.5:
    # the point at distance r on the side of the larger beta, 1/2 + r / sqrt(2)
    ((0.1, 0.0), 0.5, 0.5 + 0.5 / math.sqrt(2)),
    ((0.3, 0.0), 0.1, 0.65),                             # distance 0.212 >= 0.1: sparsemax
    ((-0.2, 0.0), 0.3, 0.5 - 0.3 / math.sqrt(2)),        # p = 0.4 moves down to 0.2879
    ((2.0, 0.0), 0.6, 1.0),                              # already the vertex
])
def test_k2_hand_values(beta, r, p):
    assert torch.allclose(sparsestmax(t(*beta), r), t(p, 1 - p), atol=1e-12)


def k3_reference(beta: np.ndarray, r: float) -> np.ndarray:
    """K = 3 by plane geometry: if sparsemax is outside the circle it is the answer; else
    the answer is on the circle: the circle's closest point to beta (projected onto the
    plane sum = 1) if it lies in the triangle, else an end of an arc inside the triangle,
    i.e. a point where the circle crosses an edge: on the edge q_k = 0 the other two are
    (p, 1 - p) with 2 p^2 - 2 p + 2/3 = r^2, p = 1/2 +- sqrt(8 r^2 - 4/3) / 4."""
    u = np.full(3, 1 / 3)
    w = np.clip(beta - _sparsemax_tau3(beta), 0, None)
    if np.linalg.norm(w - u) >= r:
        return w
    bh = beta - (beta.sum() - 1) / 3
    candidates = []
    if np.linalg.norm(bh - u) > 0:
        radial = u + r * (bh - u) / np.linalg.norm(bh - u)
        if radial.min() >= 0:
            candidates.append(radial)
    disc = 8 * r * r - 4 / 3
    if disc >= 0:
        for k in range(3):
            for p in (0.5 + math.sqrt(disc) / 4, 0.5 - math.sqrt(disc) / 4):
                q = np.zeros(3)
                i, j = [m for m in range(3) if m != k]
                q[i], q[j] = p, 1 - p
                candidates.append(q)
    return min(candidates, key=lambda q: float(((q - beta) ** 2).sum()))


def _sparsemax_tau3(z: np.ndarray) -> float:
    """The sparsemax threshold by trying each support size (3 values)."""
    zs = np.sort(z)[::-1]
    for k in (3, 2, 1):
        tau = (zs[:k].sum() - 1) / k
        if zs[k - 1] > tau:
            return tau
    raise AssertionError


def test_k3_hand_values():
    # interior: sparsemax(beta) = beta (sum 1, all > 0); distance 0.108 < 0.2; the radial
    # point u + 0.2 (beta - u) / |beta - u| stays in the triangle
    beta = t(0.4, 0.35, 0.25)
    u = torch.full((3,), 1 / 3, dtype=torch.float64)
    assert torch.allclose(sparsestmax(beta, 0.2), u + 0.2 * (beta - u) / (beta - u).norm(), atol=1e-12)
    # r = 0.45 > the inradius 1/sqrt(6): the radial point has q_3 < 0; the answer is where
    # the circle crosses the edge q_3 = 0, on the side of beta_1 > beta_2
    p = 0.5 + math.sqrt(8 * 0.45 ** 2 - 4 / 3) / 4                      # 0.63386
    assert torch.allclose(sparsestmax(t(0.5, 0.45, 0.05), 0.45), t(p, 1 - p, 0.0), atol=1e-12)


def test_k3_against_plane_geometry():
    rng = np.random.default_rng(3)
    for _ in range(200):
        beta = rng.normal(size=3) * rng.choice([0.05, 0.3, 1.0, 3.0])
        r = rng.uniform(0, circumradius(3))
        got = sparsestmax(torch.from_numpy(beta), r).numpy()
        np.testing.assert_allclose(got, k3_reference(beta, r), atol=1e-9, err_msg=f"{beta}, r={r}")


# -- general K against an independent constrained optimiser -----------------------------------

def brute_force(beta: np.ndarray, r: float, rng: np.random.Generator, starts: int = 12) -> np.ndarray:
    """min ||q - beta||^2 over the simplex minus the open ball ||q - u|| < r, by SLSQP from
    every vertex (near r_c the feasible set falls apart into K pieces around the vertices)
    and from random points of the simplex; the best feasible local solution."""
    K = len(beta)
    u = np.full(K, 1 / K)
    constraints = [{"type": "eq", "fun": lambda q: q.sum() - 1, "jac": lambda q: np.ones(K)},
                   {"type": "ineq", "fun": lambda q: (q - u) @ (q - u) - r * r, "jac": lambda q: 2 * (q - u)}]
    best = None
    for x0 in [*np.eye(K), *rng.dirichlet(np.full(K, 0.5), size=starts)]:
        res = minimize(lambda q: ((q - beta) ** 2).sum(), x0,
                       jac=lambda q: 2 * (q - beta), bounds=[(0, 1)] * K, constraints=constraints,
                       method="SLSQP", options={"ftol": 1e-15, "maxiter": 500})
        q = res.x
        feasible = abs(q.sum() - 1) < 1e-9 and q.min() > -1e-10 and (q - u) @ (q - u) > r * r - 1e-9
        if res.success and feasible and (best is None or res.fun < best[0]):
            best = (res.fun, q)
    assert best is not None
    return best[1]


@pytest.mark.parametrize("K", [5, 7])
def test_general_k_against_brute_force(K):
    rng = np.random.default_rng(K)
    cases = [(rng.normal(size=K) * s, f * circumradius(K)) for s, f in
             [(0.1, 0.3), (0.1, 0.9), (0.5, 0.5), (0.5, 0.95), (2.0, 0.6), (0.2, 0.7)]]
    for beta, r in cases:
        got = sparsestmax(torch.from_numpy(beta), r).numpy()
        ref = brute_force(beta, r, rng)
        np.testing.assert_allclose(got, ref, atol=2e-6, err_msg=f"{beta}, r={r}")
        u = np.full(K, 1 / K)
        assert np.linalg.norm(got - u) >= r - 1e-12
        assert ((got - beta) ** 2).sum() <= ((ref - beta) ** 2).sum() + 1e-12


def test_radial_procedure_converges_to_the_same_point():
    # FACTS.md §4's procedure (move radially from u, project back onto the simplex, repeat)
    torch.manual_seed(0)
    z = torch.randn(64, 6, dtype=torch.float64) * torch.tensor([0.1, 1.0]).repeat(32).unsqueeze(1)
    for r in (0.2, 0.6, 0.85):
        assert torch.allclose(sparsestmax_radial(z, r), sparsestmax(z, r), atol=1e-9)


# -- edge cases -------------------------------------------------------------------------------

def test_r0_is_sparsemax_and_the_circumradius_is_one_hot():
    torch.manual_seed(1)
    z = torch.randn(10, 5, dtype=torch.float64)
    assert torch.equal(sparsestmax(z, 0.0), sparsemax(z))
    one_hot = torch.nn.functional.one_hot(z.argmax(-1), 5).double()
    for r in (circumradius(5), 1.0, 3.0):          # the released schedule goes past r_c to 1
        assert torch.equal(sparsestmax(z, r), one_hot)
    # just below r_c the answer is already almost the vertex (continuity)
    assert torch.allclose(sparsestmax(z, circumradius(5) - 1e-9), one_hot, atol=1e-3)
    assert torch.equal(sparsestmax(t(0.3), 0.5), t(1.0))       # K = 1


def test_outputs_are_on_the_simplex_outside_the_ball():
    torch.manual_seed(2)
    for K in (2, 3, 4, 8, 15):
        z = torch.randn(3, 20, K, dtype=torch.float64) * 0.3
        for f in (0.1, 0.5, 0.9, 0.999):
            r = f * circumradius(K)
            q = sparsestmax(z, r)
            assert q.shape == z.shape and on_simplex(q)
            assert bool(((q - 1 / K).norm(dim=-1) >= r - 1e-9).all())


def test_ties_break_towards_the_lower_index():
    u4 = torch.full((4,), 0.25, dtype=torch.float64)
    # uniform beta: every point at distance r is optimal; the choice is the limit of an
    # infinitesimal decreasing ramp added to beta
    ramp = t(3.0, 2.0, 1.0, 0.0)
    for r in (0.3, 0.5, 0.7):
        q = sparsestmax(torch.zeros(4, dtype=torch.float64), r)
        assert on_simplex(q) and abs(float((q - u4).norm()) - r) < 1e-12
        assert torch.allclose(q, sparsestmax(1e-9 * ramp, r), atol=1e-6)
        assert bool((q[:-1] >= q[1:]).all())
    # two tied maxima, rho^2 = r^2 + 1/K = 1/2 exactly: uniform on the two (the family
    # (beta - c)_+ / sum reaches (1/2, 1/2, 0, 0) at c = 0.9 and stays there)
    assert torch.allclose(sparsestmax(t(1.0, 1.0, 0.9, 0.9), 0.5), t(0.5, 0.5, 0.0, 0.0), atol=1e-12)
    # r = r_c on a tie: the first maximum
    assert torch.equal(sparsestmax(t(0.0, 1.0, 1.0), circumradius(3)), t(0.0, 1.0, 0.0))


def test_gradients_are_finite_and_correct():
    torch.manual_seed(3)
    z = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: sparsestmax(x, 0.7), (z,))
    assert torch.autograd.gradcheck(sparsemax, (z,))
    # a batch mixing rows inside and outside the ball, ties, vertices and uniform rows
    rows = torch.cat([torch.randn(5, 4, dtype=torch.float64), torch.zeros(1, 4, dtype=torch.float64),
                      t(5.0, 0.0, 0.0, 0.0).unsqueeze(0), t(1.0, 1.0, 0.9, 0.9).unsqueeze(0)]).requires_grad_()
    weights = torch.randn(8, 4, dtype=torch.float64)
    for r in (0.0, 0.3, 0.5, 0.8, 1.0):
        rows.grad = None
        (sparsestmax(rows, r) * weights).sum().backward()
        assert torch.isfinite(rows.grad).all(), r


# -- radius schedule --------------------------------------------------------------------------

def test_radius_schedules():
    rc = math.sqrt(3 / 4)
    assert radius(0, 100, 4) == 0.0
    assert radius(50, 100, 4) == pytest.approx(rc / 2)
    assert radius(100, 100, 4) == pytest.approx(rc)
    assert radius(250, 100, 4) == pytest.approx(rc)                # past the end: the last radius
    assert radius(50, 100, 4, "released") == 0.5
    assert radius(100, 100, 4, "released") == 1.0 > rc             # beyond r_c: one-hot outputs
    assert radius(100, 100, 1) == 0.0                              # one candidate: r_c = 0
    z = t(0.2, 0.1, 0.0, -0.1)
    assert torch.equal(sparsestmax(z, radius(100, 100, 4)), t(1.0, 0.0, 0.0, 0.0))
    for bad in [dict(mode="linear"), dict(total=0), dict(step=-1), dict(K=0), dict(K=True)]:
        kwargs = dict(step=1, total=10, K=4, **{})
        kwargs.update(bad)
        with pytest.raises(SrnasError):
            radius(**kwargs)


def test_bad_inputs():
    with pytest.raises(SrnasError, match="last dimension"):
        sparsestmax(torch.tensor(1.0), 0.1)
    with pytest.raises(SrnasError, match="radius"):
        sparsestmax(t(1.0, 2.0), float("nan"))
