"""Reference ε values from Google's dp-accounting (0.6) for tests/dp_reference.rs.

Prints one JSON object on stdout:

* "epsilon": one object per grid point of the Poisson-subsampled Gaussian mechanism
  (add-or-remove-one adjacency),
  {"q", "sigma", "steps", "delta", "rdp_epsilon", "rdp_order", "pld_epsilon"},
  where rdp_* come from dp_accounting's RdpAccountant on its default orders and pld_epsilon
  from its PLDAccountant (a tighter, near-exact accountant: no correct RDP bound is below
  it). Infinite values are written as null. Set FEDICS_DP_NO_PLD=1 to skip the PLD column.
* "rdp": the exact one-step RDP at fractional orders, {"q", "sigma", "order", "rdp"},
  ln(A_alpha) / (alpha - 1) with A_alpha = E_{z~N(0,s^2)}[((1-q) + q e^{(2z-1)/(2s^2)})^alpha]
  integrated numerically by mpmath (a dependency of dp-accounting) at 40 digits. It checks
  the series where dp-accounting's own gives up (it stops after 1000 terms).

A test dependency only: `pip install 'dp-accounting==0.6.*'`.
"""

import itertools
import json
import math
import os
import sys

import dp_accounting
import mpmath as mp
from dp_accounting import pld, rdp

QS = [0.001, 0.01, 0.1, 0.5, 1.0]
SIGMAS = [0.6, 1.0, 2.0, 5.0]
STEPS = [1, 10, 1000]
DELTAS = [1e-5, 1e-7]

EXACT_QS = [0.001, 0.01, 0.1, 0.5, 0.9]
EXACT_SIGMAS = [0.6, 1.0, 2.0, 5.0]
EXACT_ORDERS = [1.1, 1.5, 2.5, 4.3, 7.7, 10.9]


def finite_or_none(x):
    x = float(x)
    return x if math.isfinite(x) else None


def exact_rdp(q, sigma, alpha):
    mp.mp.dps = 40
    q, s, a = mp.mpf(q), mp.mpf(sigma), mp.mpf(alpha)

    def f(z):
        return mp.npdf(z, 0, s) * ((1 - q) + q * mp.exp((2 * z - 1) / (2 * s * s))) ** a

    # Break points: the mass of mu_0, the crossing z0 of both mixture terms, and the bump of
    # the q-term near z = alpha.
    z0 = s * s * mp.log(1 / q - 1) + mp.mpf(1) / 2
    points = sorted({-10 * s, mp.mpf(0), z0, a, a + 10 * s, a + 40 * s})
    return float(mp.log(mp.quad(f, [-mp.inf] + points + [mp.inf])) / (a - 1))


def main():
    with_pld = os.environ.get("FEDICS_DP_NO_PLD") != "1"
    out = []
    for q, sigma, steps in itertools.product(QS, SIGMAS, STEPS):
        event = dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)),
            steps,
        )
        ra = rdp.RdpAccountant()
        ra.compose(event)
        pa = None
        if with_pld:
            pa = pld.PLDAccountant()
            pa.compose(event)
        for delta in DELTAS:
            eps, order = ra.get_epsilon_and_optimal_order(delta)
            out.append(
                {
                    "q": q,
                    "sigma": sigma,
                    "steps": steps,
                    "delta": delta,
                    "rdp_epsilon": finite_or_none(eps),
                    "rdp_order": float(order),
                    "pld_epsilon": finite_or_none(pa.get_epsilon(delta)) if pa else None,
                }
            )
    exact = [
        {"q": q, "sigma": sigma, "order": alpha, "rdp": exact_rdp(q, sigma, alpha)}
        for q, sigma, alpha in itertools.product(EXACT_QS, EXACT_SIGMAS, EXACT_ORDERS)
    ]
    json.dump({"epsilon": out, "rdp": exact}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
