"""Range of the Barlow Twins loss gradient dL/dz, which enters the network's f16
activation gradients under mixed precision (BENCHMARKS.md: Mixed precision).

  /usr/bin/python3 tools/reference/loss_grad_range.py

Views are correlated Gaussians (rho 0.2 early, 0.99 late), float32 numpy.
"""
import numpy as np
rng = np.random.default_rng(1)
lam = 0.0051
for n, d in [(256, 8192), (2048, 8192)]:
    for rho, what in [(0.2, "early (views weakly correlated)"), (0.99, "late (C_ii 0.99, decorrelated features)")]:
        za = rng.standard_normal((n, d)).astype(np.float32)
        zb = (rho * za + np.sqrt(1 - rho**2) * rng.standard_normal((n, d)).astype(np.float32)).astype(np.float32)
        def norm(z):
            m = z.mean(0); v = z.var(0)
            inv = 1 / np.sqrt(v + 1e-5)
            return (z - m) * inv, inv
        ha, ia = norm(za); hb, ib = norm(zb)
        c = ha.T @ hb / n
        g = 2 * lam * c
        np.fill_diagonal(g, -2 * (1 - np.diag(c)))
        dha = hb @ g.T / n
        # BatchNorm backward to dz
        dza = ia * (dha - dha.mean(0) - ha * (dha * ha).mean(0))
        a = np.abs(dza).ravel()
        q = np.quantile(a, [0.001, 0.01, 0.5, 0.99])
        print(f"N={n} D={d} {what}: |dL/dz| quantiles 0.1% {q[0]:.2e}  1% {q[1]:.2e}  median {q[2]:.2e}  99% {q[3]:.2e}  max {a.max():.2e};"
              f" below f16's smallest normal (6.1e-5): {np.mean(a < 6.1e-5)*100:.1f}%, below its smallest subnormal (6e-8): {np.mean(a < 6e-8)*100:.3f}%")
        del c, g
