"""The three problem families of the small-batch variance suite, each with an exact true gradient.

A problem owns a fixed instance (built from the config's `problem_seed`, identical for every
optimizer and unit) and answers four questions about a list of float64 parameter tensors:
  initial_params()                   where every unit starts
  sample_gradient(params, n, rng)    a stochastic gradient averaging n independent draws, and a loss
  measure(params, initial)           the quantity whose floor the suite reports (see `measure_name`)
  true_gradient(params)              the exact full gradient (what the noise is measured against)

Randomness always comes from the `rng` the caller passes (a per-unit torch.Generator); nothing
here touches the global RNG, so a unit is a pure function of its seed.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch
from ..config import SuiteConfigError

DTYPE = torch.float64
PROBLEM_NAMES = ("skewed_flat", "skewed_quadratic", "nonconvex", "digits_mlp")


class Problem(Protocol):
    name: str
    family: str  # 'skewed', 'nonconvex' or 'mlp': which lr scale and step count apply
    measure_name: str  # 'grad_norm' or 'drift_per_lr_step'

    def initial_params(self) -> list[torch.Tensor]: ...

    def sample_gradient(
        self, params: list[torch.Tensor], n: int, rng: torch.Generator
    ) -> tuple[list[torch.Tensor], float]: ...

    def true_gradient(self, params: list[torch.Tensor]) -> list[torch.Tensor]: ...

    def measure(self, params: list[torch.Tensor], initial: list[torch.Tensor], lr: float, step: int) -> float: ...


def _leaf(values: torch.Tensor) -> torch.Tensor:
    return values.detach().clone().to(DTYPE).requires_grad_(True)


def flat_norm(tensors: list[torch.Tensor]) -> float:
    return math.sqrt(sum(float(t.detach().pow(2).sum()) for t in tensors))


class SkewedNoise1D:
    """The paper's Section 2 example: gradient noise p w.p. 1-p and p-1 w.p. p (mean 0, variance p(1-p)).

    F(w) = curvature/2 (w - center)^2. On the flat F (curvature 0) the true gradient is 0
    everywhere, so the measured quantity is the DRIFT |w_t - w_0| / (lr * t): the average step in
    units of the learning rate. It is 1 - 2p for normalized SGD at batch 1 (the paper's
    E[g/|g|] = 1 - 2p) and tends to 0 for a method that, correctly, does not move on average.
    On the quadratic it is the true gradient norm |w - center|. The minimum sits away from the
    origin so that methods whose steps scale with ||w|| (LARS, LAMB) get no free ride.
    A batch of n draws averages n noises: exactly p - k/n with k ~ Binomial(n, p).
    """

    family = "skewed"

    def __init__(self, p: float, curvature: float, center: float, start: float):
        self.p, self.curvature, self.center, self.start = p, curvature, center, start
        self.name = "skewed_flat" if curvature == 0 else "skewed_quadratic"
        self.measure_name = "drift_per_lr_step" if curvature == 0 else "grad_norm"

    def initial_params(self) -> list[torch.Tensor]:
        return [_leaf(torch.tensor([self.start]))]

    def true_gradient(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        return [self.curvature * (params[0].detach() - self.center)]

    def sample_gradient(self, params, n, rng):
        # torch.binomial takes a generator and is exact; n uniforms would cost O(n).
        k = torch.binomial(torch.tensor([float(n)], dtype=DTYPE), torch.tensor([self.p], dtype=DTYPE), generator=rng)
        noise = self.p - k / n
        w = params[0].detach()
        loss = float((0.5 * self.curvature * (w - self.center).pow(2) + noise * w).sum())
        return [self.true_gradient(params)[0] + noise], loss

    def measure(self, params, initial, lr, step):
        if self.curvature == 0:
            return abs(float(params[0].detach() - initial[0])) / (lr * max(step, 1))
        return flat_norm(self.true_gradient(params))


class RotatedNonconvex:
    """F(w) = sum_i phi((Q w)_i), phi(y) = y^2/2 + s cos(y), Q a fixed random rotation.

    Smooth, non-convex for s > 1 (phi''(0) = 1 - s < 0), bounded below, with known constants:
    L = 1 + s (gradient Lipschitz) and rho = s (Hessian Lipschitz: |phi'''| <= s and the cubic
    form of a separable function in rotated coordinates is bounded by s ||h||^3). The rotation
    keeps the problem from being axis-aligned (it matters to coordinate-wise methods like Adam).
    Noise: Gaussian with E||noise||^2 = sigma^2 per draw; the mean of n draws is one draw
    scaled by 1/sqrt(n), which is the same distribution.
    """

    family = "nonconvex"
    name = "nonconvex"
    measure_name = "grad_norm"

    def __init__(self, dim: int, sigma: float, curvature: float, seed: int):
        self.dim, self.sigma, self.s = dim, sigma, curvature
        self.L, self.rho = 1.0 + curvature, curvature
        rng = np.random.default_rng([seed, 2])
        q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
        self.Q = torch.tensor(q * np.sign(np.diag(r)), dtype=DTYPE)  # sign fix: a uniform rotation
        # Start with coordinates on both sides of the non-convex region |y| < 1.9 around the origin.
        self.w0 = self.Q.T @ torch.tensor(rng.uniform(-3.0, 3.0, size=dim), dtype=DTYPE)

    def value(self, w: torch.Tensor) -> float:
        y = self.Q @ w
        return float((0.5 * y.pow(2) + self.s * torch.cos(y)).sum())

    def initial_params(self) -> list[torch.Tensor]:
        return [_leaf(self.w0)]

    def true_gradient(self, params):
        y = self.Q @ params[0].detach()
        return [self.Q.T @ (y - self.s * torch.sin(y))]

    def sample_gradient(self, params, n, rng):
        noise = torch.randn(self.dim, generator=rng, dtype=DTYPE) * (self.sigma / math.sqrt(self.dim * n))
        return [self.true_gradient(params)[0] + noise], self.value(params[0].detach())

    def measure(self, params, initial, lr, step):
        return flat_norm(self.true_gradient(params))


class DigitsMLP:
    """A 64-h-10 tanh MLP with cross-entropy on scikit-learn's bundled digits (1,797 real images).

    The training objective is the mean loss over all 1,797 examples, so its exact gradient is one
    full-batch backward pass. A stochastic gradient averages n examples drawn independently
    (with replacement), so its variance is exactly the per-example variance / n.
    """

    family = "mlp"
    name = "digits_mlp"
    measure_name = "grad_norm"

    def __init__(self, hidden: int, seed: int):
        from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

        digits = load_digits()
        self.x = torch.tensor(digits.data / 16.0, dtype=DTYPE)
        self.y = torch.tensor(digits.target, dtype=torch.long)
        gen = torch.Generator().manual_seed(int(seed))
        d_in, d_out = self.x.shape[1], 10
        self.init = [
            torch.randn(hidden, d_in, generator=gen, dtype=DTYPE) / math.sqrt(d_in),
            torch.zeros(hidden, dtype=DTYPE),
            torch.randn(d_out, hidden, generator=gen, dtype=DTYPE) / math.sqrt(hidden),
            torch.zeros(d_out, dtype=DTYPE),
        ]

    def initial_params(self) -> list[torch.Tensor]:
        return [_leaf(t) for t in self.init]

    def _loss(self, params, x, y) -> torch.Tensor:
        w1, b1, w2, b2 = params
        logits = torch.tanh(x @ w1.T + b1) @ w2.T + b2
        return torch.nn.functional.cross_entropy(logits, y)

    def _gradient(self, params, x, y) -> tuple[list[torch.Tensor], float]:
        with torch.enable_grad():
            leaves = [p.detach().requires_grad_(True) for p in params]
            loss = self._loss(leaves, x, y)
            grads = torch.autograd.grad(loss, leaves)
        return [g.detach() for g in grads], float(loss.detach())

    def true_gradient(self, params):
        return self._gradient(params, self.x, self.y)[0]

    def sample_gradient(self, params, n, rng):
        index = torch.randint(0, self.x.shape[0], (n,), generator=rng)
        return self._gradient(params, self.x[index], self.y[index])

    def measure(self, params, initial, lr, step):
        return flat_norm(self.true_gradient(params))


def build_problem(name: str, config: dict) -> Problem:
    """The problem instance `name` as the (validated) config describes it."""
    if name == "skewed_flat":
        return SkewedNoise1D(config["skew_p"], 0.0, config["skewed_center"], config["skewed_center"])
    if name == "skewed_quadratic":
        return SkewedNoise1D(config["skew_p"], 1.0, config["skewed_center"],
                             config["skewed_center"] + config["skewed_distance"])
    if name == "nonconvex":
        return RotatedNonconvex(config["nonconvex_dim"], config["nonconvex_sigma"],
                                config["nonconvex_curvature"], config["problem_seed"])
    if name == "digits_mlp":
        return DigitsMLP(config["mlp_hidden"], config["problem_seed"])
    raise SuiteConfigError(f"unknown problem {name!r}; accepted: {', '.join(PROBLEM_NAMES)}")


def gradient_variance(problem: Problem, params: list[torch.Tensor], n: int, draws: int,
                      rng: torch.Generator) -> float:
    """E||g_n - grad F||^2 at `params`, estimated from `draws` independent batches of n."""
    exact = problem.true_gradient(params)
    total = 0.0
    for _ in range(draws):
        sample, _loss = problem.sample_gradient(params, n, rng)
        total += sum(float((s - e).pow(2).sum()) for s, e in zip(sample, exact))
    return total / draws
