"""Fine-tuning scaling laws and their robust, deterministic fits.

Three laws, all fitted to log-loss (a relative error, so a curve's 4.2 and 1.7
weigh alike) with bounded parameters and a seeded multi-start:

- ``lensllm``: L(D) = B / (F + D^beta) + E (Zeng et al., 2025). With an
  ``NTKSpectrum`` the F term comes from the model's NTK (see ``_spectral_F``);
  without one F >= 0 is free and the law is the Rectified Scaling Law's form.
- ``rectified``: the same law fitted the way Lin et al. (ICML 2024) fit it:
  the zero-shot loss is a point at D -> 0, parameters (A, B', beta, E) with
  L = (A - E) / (1 + exp(B') D^beta) + E, a surrogate stage that gives every
  point a latent Z_i = exp(B') D_i^beta (so the fit is smooth in beta and B'),
  then a second stage that re-fits A and E with beta and B' held. Their code
  runs BFGS with numerical gradients; here both stages are bounded
  ``least_squares`` problems with analytic Jacobians (same objectives, a
  fraction of the time), started from their initial guess plus seeded
  perturbations. Parameters are reported as B, F, beta, E of the common form
  (F = exp(-B'), B = (A - E) F).
- ``vanilla``: L(D) = B / D^beta + E, the plain power law with a floor.

Failures (too few points, non-finite data, no acceptable optimum) come back as
a ``FitResult`` with ``ok=False`` and a reason; nothing here raises on data.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares, leastsq
from scipy.special import expit, logit

from core.science.spectrum import NTKSpectrum

LAWS: tuple[str, ...] = ("lensllm", "rectified", "vanilla")

MIN_POINTS = {"lensllm": 4, "rectified": 4, "vanilla": 3}
"""Fewest distinct points (the zero-shot one included where a law uses it) a
law is fitted to: one more than it has free shape parameters, so a fit is
never an exact interpolation that says nothing about the error."""

N_RECT_PERTURB = 4
"""Seeded perturbations of Lin et al.'s initial guess tried by the rectified fit
(five starts in all; their code repeats one identical start three times). The
surrogate objective has degenerate optima (A -> inf, beta -> 0) that a start
can fall into. Measured on 180 fits (both benchmark tables, budgets 3200,
25600, 204800), the final objective is worse than their BFGS run's in 3 fits
with five starts, 7 with three, 18 with two; five starts also bring the
replayed PearCorr within about two points of their published OurFit numbers
in 12 of 14 cells (three starts leave FLAN at 1/64 at 28 against 48).
"""

ZERO_SHOT_X = 1e-10
"""Lin et al. place the zero-shot point at D = 1e-10 (log D = -23) rather than
at D = 0; the rectified fit does the same so its optimum matches theirs."""

_BETA_BOUNDS = (1e-3, 3.0)
_LOGF_BOUNDS = (-20.0, 60.0)
_LOGB_BOUNDS = (-30.0, 120.0)


@dataclass(frozen=True)
class FitResult:
    """A fitted law: parameters, fit quality and, on failure, why it failed.

    ``residual`` is the RMS log-loss residual over the fitted points (NaN when
    the fit failed). ``predict`` gives NaN everywhere for a failed fit so
    callers can treat it like any other prediction and check ``ok``.
    """

    law: str
    params: dict[str, float]
    ok: bool
    residual: float = math.nan
    reason: str = ""
    n_points: int = 0
    spectrum: NTKSpectrum | None = field(default=None, repr=False, compare=False)

    def predict(self, sizes: float | Sequence[float] | np.ndarray) -> np.ndarray:
        """Predicted loss at each size (NaN for a failed fit)."""
        d = np.atleast_1d(np.asarray(sizes, dtype=np.float64))
        if not self.ok:
            return np.full(d.shape, np.nan)
        p = self.params
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            logd = np.log(d)
            if self.law == "vanilla":
                power = np.exp(np.log(p["B"]) - p["beta"] * logd)
                return power + p["E"]
            if self.law == "lensllm" and self.spectrum is not None:
                f = p["s"] * _spectral_F(self.spectrum, p["tau"] * d)
                logf = np.log(f)
            else:
                logf = np.full(d.shape, np.log(p["F"]) if p["F"] > 0 else -np.inf)
            denom = np.logaddexp(logf, p["beta"] * logd)
            return np.exp(np.log(p["B"]) - denom) + p["E"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "law": self.law,
            "params": dict(self.params),
            "ok": self.ok,
            "residual": None if not math.isfinite(self.residual) else self.residual,
            "reason": self.reason,
            "n_points": self.n_points,
        }


def _fail(law: str, reason: str, n: int = 0) -> FitResult:
    return FitResult(law, {}, False, math.nan, reason, n)


def _spectral_F(spectrum: NTKSpectrum, t: np.ndarray) -> np.ndarray:
    """Normalised F(Theta, t): eigenvalues over the largest, weights over their sum.

    Normalising makes t dimensionless (t = 1 is the time the top mode needs to
    shrink by e^2) and F(0) = 1, so the fitted scale s is F at the start of
    training and the same bounds suit every model's spectrum.
    """
    lam = np.asarray(spectrum.eigenvalues, dtype=np.float64)
    w = np.asarray(spectrum.weights, dtype=np.float64)
    lam = lam / lam.max() if lam.max() > 0 else lam
    w = w / w.sum() if w.sum() > 0 else np.full_like(w, 1.0 / w.size)
    return np.exp(-2.0 * np.multiply.outer(np.asarray(t, dtype=np.float64), lam)) @ w


def _prepare(
    sizes: Sequence[float] | np.ndarray,
    losses: Sequence[float] | np.ndarray,
    zero_shot: float | None,
) -> tuple[np.ndarray, np.ndarray, float | None] | str:
    """Split into positive-size points and the zero-shot loss, or a failure reason."""
    try:
        d = np.asarray(sizes, dtype=np.float64).reshape(-1)
        y = np.asarray(losses, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return "sizes and losses must be numbers"
    if d.shape != y.shape:
        return f"{d.size} sizes but {y.size} losses"
    if not (np.all(np.isfinite(d)) and np.all(np.isfinite(y))):
        return "non-finite size or loss"
    if np.any(y <= 0):
        return "losses must be positive"
    if np.any(d < 0):
        return "sizes must be non-negative"
    zero = d == 0
    z = float(y[zero][0]) if np.any(zero) else None
    if zero_shot is not None:
        if not (math.isfinite(zero_shot) and zero_shot > 0):
            return "zero-shot loss must be finite and positive"
        z = float(zero_shot)
    d, y = d[~zero], y[~zero]
    if np.unique(d).size != d.size:
        return "duplicate sizes"
    order = np.argsort(d)
    return d[order], y[order], z


def fit_law(
    law: str,
    sizes: Sequence[float] | np.ndarray,
    losses: Sequence[float] | np.ndarray,
    *,
    spectrum: NTKSpectrum | None = None,
    seed: int = 0,
    zero_shot: float | None = None,
) -> FitResult:
    """Fit ``law`` to a loss curve; never raises on data, returns ok=False instead.

    A size of 0 in ``sizes`` (or ``zero_shot``) is the zero-shot loss: the
    lensllm and rectified laws use it as their D -> 0 limit B/F + E, the
    vanilla law (which diverges at D = 0) ignores it.

    The fit is a pure function of its arguments, so it is memoised: a run's
    refit asks the flagship the same curve at several sizes between the budget
    and the target (the chart's predictive path), and each ask fitted the same
    law again; that was most of the driver's time between two points. The
    returned FitResult is shared between callers and must not be changed.
    """
    try:
        key = (tuple(map(float, sizes)), tuple(map(float, losses)))
        hash((key, spectrum, zero_shot))
    except (TypeError, ValueError):  # not a flat sequence of numbers: no memo, same answer
        return _fit_law(law, sizes, losses, spectrum, seed, zero_shot)
    return _fit_memo(law, *key, spectrum, seed, zero_shot)


FIT_MEMO_SIZE = 1024
"""Fits kept by ``fit_law``'s memo: a refit asks about one per model, a bench
replay a few per curve and budget; each entry is a few hundred bytes."""


@functools.lru_cache(maxsize=FIT_MEMO_SIZE)
def _fit_memo(
    law: str,
    sizes: tuple[float, ...],
    losses: tuple[float, ...],
    spectrum: NTKSpectrum | None,
    seed: int,
    zero_shot: float | None,
) -> FitResult:
    return _fit_law(law, sizes, losses, spectrum, seed, zero_shot)


def _fit_law(
    law: str,
    sizes: Sequence[float] | np.ndarray,
    losses: Sequence[float] | np.ndarray,
    spectrum: NTKSpectrum | None,
    seed: int,
    zero_shot: float | None,
) -> FitResult:
    if law not in LAWS:
        return _fail(law, f"unknown law {law!r} (expected one of {', '.join(LAWS)})")
    prepared = _prepare(sizes, losses, zero_shot)
    if isinstance(prepared, str):
        return _fail(law, prepared)
    d, y, z = prepared
    uses_zero = law != "vanilla" and z is not None
    n = d.size + (1 if uses_zero else 0)
    if n < MIN_POINTS[law]:
        return _fail(law, f"too few points for {law}: {n} < {MIN_POINTS[law]}", n)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            if law == "rectified":
                fit = _fit_rectified(d, y, z, seed)
            elif law == "lensllm" and spectrum is not None:
                fit = _fit_spectral(d, y, z, spectrum, seed)
            else:
                fit = _fit_direct(law, d, y, z if uses_zero else None, seed)
        except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            return _fail(law, f"optimizer failed: {exc}".splitlines()[0], n)
    return _finite_or_failed(fit)


def _finite_or_failed(fit: FitResult) -> FitResult:
    """A fit with an infinite or NaN parameter or residual is a failure, whatever found it."""
    if not fit.ok:
        return fit
    bad = [k for k, v in fit.params.items() if not math.isfinite(v)]
    if bad or not math.isfinite(fit.residual):
        what = ", ".join(f"{k}={fit.params[k]}" for k in bad) or f"residual={fit.residual}"
        return FitResult(
            fit.law, {}, False, math.nan, f"non-finite fit ({what})", fit.n_points, fit.spectrum
        )
    return fit


# --- lensllm (free F) and vanilla: direct bounded fit in log space ----------------


class _DirectModel:
    """log L and its Jacobian for theta = (log B, [log F,] beta, E), x = log D.

    Points flagged in ``zero_mask`` are the D -> 0 limit B/F + E. ``least_squares``
    asks for the residual and then the Jacobian at the same theta, so both
    come from one evaluation, cached by theta.
    """

    def __init__(self, x: np.ndarray, ly: np.ndarray, zero_mask: np.ndarray, has_f: bool):
        self.has_f = has_f
        self.ly = ly
        self.x0 = np.where(zero_mask, 0.0, x)  # finite stand-in; masked below
        self.mask_add = np.where(zero_mask, -np.inf, 0.0)
        self.jac_buf = np.empty((x.size, 4 if has_f else 3))
        self.key: bytes = b""

    def _eval(self, theta: np.ndarray) -> None:
        key = theta.tobytes()
        if key == self.key:
            return
        if self.has_f:
            b, f, beta, e = theta
        else:
            b, beta, e = theta
        bx = beta * self.x0 + self.mask_add
        denom = np.logaddexp(f, bx) if self.has_f else bx
        power = np.exp(b - denom)
        loss = power + e
        w = power / loss
        jb = self.jac_buf
        jb[:, 0] = w
        if self.has_f:
            share_f = np.exp(f - denom)  # share of F in the denominator (1 at D -> 0)
            jb[:, 1] = -w * share_f
            jb[:, 2] = -w * (1.0 - share_f) * self.x0
            jb[:, 3] = 1.0 / loss
        else:
            jb[:, 1] = -w * self.x0
            jb[:, 2] = 1.0 / loss
        self.res = np.log(loss) - self.ly
        self.key = key

    def fun(self, theta: np.ndarray) -> np.ndarray:
        self._eval(theta)
        return self.res

    def jac(self, theta: np.ndarray) -> np.ndarray:
        self._eval(theta)
        return self.jac_buf.copy()


def _fit_direct(law: str, d: np.ndarray, y: np.ndarray, z: float | None, seed: int) -> FitResult:
    has_f = law == "lensllm"
    x = np.log(d)
    yy = y if z is None else np.append(y, z)
    xx = x if z is None else np.append(x, 0.0)
    zero_mask = np.zeros(yy.size, dtype=bool)
    if z is not None:
        zero_mask[-1] = True
    ly = np.log(yy)
    e_hi = 0.999 * float(yy.min())
    model = _DirectModel(xx, ly, zero_mask, has_f)
    blo, bhi = _BETA_BOUNDS

    # beta and E are bounded through a logistic map so the fast unbounded
    # Levenberg-Marquardt (MINPACK) can be used: about twice the speed of the
    # bounded trust-region solver, with the same optima on the benchmark curves.
    def to_theta(u: np.ndarray) -> np.ndarray:
        th = u.copy()
        th[-2] = blo + (bhi - blo) * expit(u[-2])
        th[-1] = e_hi * expit(u[-1])
        return th

    def fun(u: np.ndarray) -> np.ndarray:
        return model.fun(to_theta(u))

    def jac(u: np.ndarray) -> np.ndarray:
        j = model.jac(to_theta(u))
        sb, se = expit(u[-2]), expit(u[-1])
        j[:, -2] *= (bhi - blo) * sb * (1.0 - sb)
        j[:, -1] *= e_hi * se * (1.0 - se)
        return j

    best: Any = None
    for theta0 in _grid_starts(xx, yy, zero_mask, has_f, e_hi, seed):
        u0 = theta0.copy()
        u0[-2] = logit(np.clip((theta0[-2] - blo) / (bhi - blo), 1e-6, 1 - 1e-6))
        u0[-1] = logit(np.clip(theta0[-1] / e_hi, 1e-6, 1 - 1e-6))
        res = _lm(fun, jac, u0, 300)
        if res is not None and (best is None or res[1] < best[1]):
            best = res
    n = yy.size
    if best is None:
        return _fail(law, "optimizer found no finite optimum", n)
    theta = to_theta(best[0])
    fvec = best[2]
    if has_f:
        params = {
            "B": float(np.exp(theta[0])),
            "F": float(np.exp(theta[1])),
            "beta": float(theta[2]),
            "E": float(theta[3]),
        }
    else:
        params = {"B": float(np.exp(theta[0])), "beta": float(theta[1]), "E": float(theta[2])}
    rms = float(np.sqrt(np.mean(fvec**2)))
    return FitResult(law, params, True, rms, "", n)


def _lm(
    fun: Callable[[np.ndarray], np.ndarray],
    jac: Callable[[np.ndarray], np.ndarray],
    x0: np.ndarray,
    maxfev: int,
) -> tuple[np.ndarray, float, np.ndarray] | None:
    """MINPACK Levenberg-Marquardt (scipy.optimize.leastsq): (x, cost, residuals) or None.

    Called directly rather than through ``least_squares(method="lm")``, which
    runs the same MINPACK code behind a wrapper that costs about as much again
    as these tiny problems themselves.
    """
    try:
        x, _cov, info, _msg, ier = leastsq(fun, x0, Dfun=jac, full_output=True, maxfev=maxfev)
    except (ValueError, TypeError, np.linalg.LinAlgError):
        return None
    fvec = np.asarray(info["fvec"])
    if ier not in (1, 2, 3, 4, 5) or not (np.all(np.isfinite(fvec)) and np.all(np.isfinite(x))):
        return None
    return x, float(0.5 * fvec @ fvec), fvec


def _grid_starts(
    x: np.ndarray,
    y: np.ndarray,
    zero_mask: np.ndarray,
    has_f: bool,
    e_hi: float,
    seed: int,
    keep: int = 2,
) -> list[np.ndarray]:
    """Starting points from a vectorised grid search with (B, E) solved linearly.

    For fixed (F, beta) the law is linear in (B, E); a weighted (1/y, so close
    to log space) least-squares solve per grid cell picks the few best cells.
    The seed jitters the grid, so different seeds explore different starts
    while one seed always gives the same fit.
    """
    rng = np.random.default_rng(seed)
    betas = np.geomspace(0.01, 2.0, 16) * np.exp(rng.uniform(-0.1, 0.1))
    xmin = float(x[~zero_mask].min())
    xmax = float(x[~zero_mask].max())
    if has_f:
        # F around the D^beta values seen: from negligible to dominating
        fr = np.linspace(-2.0, 1.5, 8) + rng.uniform(-0.1, 0.1)
        bb, ff = np.meshgrid(betas, fr, indexing="ij")
        beta_g = bb.ravel()
        logf_g = (ff * (bb * (xmax - xmin)) + bb * xmin).ravel()
        logf_g = np.clip(logf_g, _LOGF_BOUNDS[0], _LOGF_BOUNDS[1])
    else:
        beta_g = betas
        logf_g = np.full(betas.shape, -np.inf)
    bx = np.where(zero_mask[None, :], -np.inf, beta_g[:, None] * x[None, :])
    g = np.exp(-np.logaddexp(logf_g[:, None], bx))  # (cells, points): L = B g + E
    wgt = 1.0 / y
    gw, ow, yw = g * wgt, wgt[None, :] * np.ones_like(g), (y * wgt)[None, :]
    # 2x2 normal equations per cell
    a11, a12, a22 = (gw * gw).sum(1), (gw * ow).sum(1), (ow * ow).sum(1)
    r1, r2 = (gw * yw).sum(1), (ow * yw).sum(1)
    det = a11 * a22 - a12**2
    safe = np.abs(det) > 1e-300
    e = np.where(safe, (a11 * r2 - a12 * r1) / np.where(safe, det, 1.0), 0.0)
    e = np.clip(e, 0.0, e_hi)
    bcoef = np.maximum(((gw * (yw - e[:, None] * ow)).sum(1)) / np.maximum(a11, 1e-300), 1e-300)
    pred = bcoef[:, None] * g + e[:, None]
    sse = np.sum((np.log(np.maximum(pred, 1e-300)) - np.log(y)[None, :]) ** 2, axis=1)
    sse = np.where(np.isfinite(sse), sse, np.inf)
    order = np.argsort(sse, kind="stable")
    starts: list[np.ndarray] = []
    for i in order[: keep * 4]:
        logb = float(np.clip(np.log(bcoef[i]), *_LOGB_BOUNDS))
        cand = (
            np.array([logb, logf_g[i], beta_g[i], e[i]])
            if has_f
            else np.array([logb, beta_g[i], e[i]])
        )
        if all(np.max(np.abs(cand - s)) > 0.05 for s in starts):
            starts.append(cand)
        if len(starts) == keep:
            break
    return starts


# --- lensllm with an NTK spectrum --------------------------------------------------


def _fit_spectral(
    d: np.ndarray, y: np.ndarray, z: float | None, spectrum: NTKSpectrum, seed: int
) -> FitResult:
    """Fit L = B / (s F(Theta, tau D) + D^beta) + E.

    The law's t is training time; at a fixed number of epochs it grows with
    the samples seen, so t = tau D with tau >= 0 fitted. A constant t would
    make s and t unidentifiable (F would enter only as the product s F(t));
    tau = 0 recovers the free-F (rectified) form, which is where the fit
    starts, so the spectrum can only improve on it.
    """
    base = _fit_direct("lensllm", d, y, z, seed)
    n = d.size + (1 if z is not None else 0)
    if not base.ok:
        return FitResult("lensllm", {}, False, math.nan, base.reason, n, spectrum)
    dd = d if z is None else np.append(d, 0.0)
    ly = np.log(y if z is None else np.append(y, z))
    lam = np.asarray(spectrum.eigenvalues, dtype=np.float64)
    if not (np.all(np.isfinite(lam)) and np.all(np.isfinite(spectrum.weights))):
        return FitResult("lensllm", {}, False, math.nan, "non-finite NTK spectrum", n, spectrum)
    logd = np.where(dd > 0, np.log(np.where(dd > 0, dd, 1.0)), -np.inf)
    tau_hi = 50.0 / float(d.min())
    e_hi = 0.999 * float(np.exp(ly).min())

    def fun(theta: np.ndarray) -> np.ndarray:
        logb, logs, tau, beta, e = theta
        f = np.exp(logs) * _spectral_F(spectrum, tau * dd)
        denom = np.logaddexp(np.log(np.maximum(f, 1e-300)), beta * logd)
        return np.log(np.exp(logb - denom) + e) - ly

    lo = [_LOGB_BOUNDS[0], _LOGF_BOUNDS[0], 0.0, _BETA_BOUNDS[0], 0.0]
    hi = [_LOGB_BOUNDS[1], _LOGF_BOUNDS[1], tau_hi, _BETA_BOUNDS[1], e_hi]
    p = base.params
    rng = np.random.default_rng(seed)
    best: Any = None
    for tau0 in (0.0, *(tau_hi * 10.0 ** rng.uniform(-4, -1, 2))):
        theta0 = np.array([math.log(p["B"]), math.log(max(p["F"], 1e-8)), tau0, p["beta"], p["E"]])
        theta0 = np.clip(theta0, np.array(lo) + 1e-12, np.array(hi) - 1e-12)
        res = least_squares(fun, theta0, bounds=(lo, hi), method="trf", max_nfev=300)
        if np.all(np.isfinite(res.fun)) and (best is None or res.cost < best.cost):
            best = res
    if best is None:
        return FitResult("lensllm", {}, False, math.nan, "optimizer found no finite optimum", n)
    logb, logs, tau, beta, e = best.x
    params = {
        "B": float(np.exp(logb)),
        "s": float(np.exp(logs)),
        "tau": float(tau),
        "beta": float(beta),
        "E": float(e),
    }
    rms = float(np.sqrt(np.mean(best.fun**2)))
    return FitResult("lensllm", params, True, rms, "", n, spectrum)


# --- rectified: Lin et al.'s two-stage surrogate fit --------------------------------


def _fit_rectified(d: np.ndarray, y: np.ndarray, z: float | None, seed: int) -> FitResult:
    """Lin et al.'s surrogate-then-refit procedure, as least squares with Jacobians.

    Stage 1 minimises mean (log((A + E Z_i) / (1 + Z_i)) - log y_i)^2 +
    mean (log Z_i - beta log D_i - B')^2 over (A, B', beta, E, log Z); stage 2
    minimises the law's own mean squared log error over (A, E) with B' and
    beta from stage 1. The candidate with the lowest stage-2 loss and A > E
    wins (their acceptance rule). A and E are optimised as logs (positive, as
    their abs(E) makes E), beta through a logistic map onto (0, 5), so the
    unbounded Levenberg-Marquardt solver applies.
    """
    dd = d if z is None else np.append(d, ZERO_SHOT_X)
    yy = y if z is None else np.append(y, z)
    lx, ly = np.log(dd), np.log(yy)
    n = ly.size
    sq = 1.0 / math.sqrt(n)
    u, low = float(ly.max()), float(ly.min())
    rng = np.random.default_rng(seed)
    # their initial guess (A = max loss, B' = 0, beta = 1, E = geometric mid-loss),
    # then a seeded perturbation of it
    inits = [(u, 0.0, 1.0, (u + low) / 2)]
    for _ in range(N_RECT_PERTURB):
        inits.append(
            (u + rng.uniform(0.0, 0.2), rng.uniform(-6.0, 0.0), rng.uniform(0.2, 0.8), low)
        )
    beta_hi = 5.0
    eye = np.eye(n)

    def stage1(theta: np.ndarray) -> np.ndarray:
        a, e = np.exp(theta[0]), np.exp(theta[3])
        beta = beta_hi * expit(theta[2])
        lz = theta[4:]
        zz = np.exp(lz)
        ry = np.log(a + e * zz) - np.log1p(zz) - ly
        rx = lz - beta * lx - theta[1]
        return np.concatenate([ry, rx]) * sq

    def stage1_jac(theta: np.ndarray) -> np.ndarray:
        a, e = np.exp(theta[0]), np.exp(theta[3])
        sb = expit(theta[2])
        zz = np.exp(theta[4:])
        num = a + e * zz
        jac = np.zeros((2 * n, 4 + n))
        jac[:n, 0] = a / num
        jac[:n, 3] = e * zz / num
        jac[:n, 4:] = np.diag(e * zz / num - zz / (1.0 + zz))
        jac[n:, 1] = -1.0
        jac[n:, 2] = -lx * beta_hi * sb * (1.0 - sb)
        jac[n:, 4:] = eye
        return jac * sq

    best: tuple[float, np.ndarray] | None = None
    for la0, b0, beta0, le0 in inits:
        theta0 = np.concatenate([[la0, b0, logit(beta0 / beta_hi), le0], np.zeros(n)])
        r1 = _lm(stage1, stage1_jac, theta0, 400)
        if r1 is None:
            continue
        la, bp, ub, le = r1[0][:4]
        beta = beta_hi * expit(ub)
        s = expit(-(beta * lx + bp))  # 1 / (1 + exp(beta log D + B'))

        def stage2(v: np.ndarray, s: np.ndarray = s) -> np.ndarray:
            return (np.log(np.exp(v[0]) * s + np.exp(v[1]) * (1.0 - s)) - ly) * sq

        def stage2_jac(v: np.ndarray, s: np.ndarray = s) -> np.ndarray:
            a, e = np.exp(v[0]), np.exp(v[1])
            lval = a * s + e * (1.0 - s)
            return np.column_stack([a * s / lval, e * (1.0 - s) / lval]) * sq

        r2 = _lm(stage2, stage2_jac, np.array([la, le]), 200)
        if r2 is None:
            continue
        a2, e2 = np.exp(r2[0])
        loss = float(np.mean((r2[2] / sq) ** 2))
        if math.isfinite(loss) and a2 > e2 and (best is None or loss < best[0]):
            best = (loss, np.array([a2, bp, beta, e2]))
    if best is None:
        return _fail("rectified", "no optimum with zero-shot limit A above floor E", n)
    a, bp, beta, e = best[1]
    f = float(np.exp(-bp))
    params = {"B": float((a - e) * f), "F": f, "beta": float(beta), "E": float(e), "A": float(a)}
    if not all(math.isfinite(v) for v in params.values()) or params["B"] <= 0:
        return _fail("rectified", "optimizer diverged (parameters out of floating-point range)", n)
    return FitResult("rectified", params, True, math.sqrt(best[0]), "", n)
