"""Policy collapse per seed: "learned", "failed to learn" or "collapsed" (studies §2.2).

Dohare et al. show collapse as a falling mean curve over many seeds and never define a
per-seed test, so this module states one.  For one seed's return curve ``R(k)`` sampled at
evenly spaced points ``k = 0 .. n-1`` (evaluation points, or training-return bins):

* ``S(k)``, the **trailing** mean of ``R`` over ``window`` points (``S(k)`` reads no point
  after ``k``, so a later dip cannot manufacture an earlier peak);
* peak ``P = max S`` at ``k*``; gain ``G = P - B`` over the baseline ``B`` (the return of
  the untrained policy on the same task); final ``F`` = mean of ``S`` over the last
  ``final_fraction`` of the points;
* normalised final drop ``D = (P - F) / G``; normalised drawdown
  ``dd(k) = (max_{j<=k} S(j) - S(k)) / G``, its maximum ``MDD``, and the post-peak deficit
  ``A`` = mean of ``(P - S(k)) / G`` over ``k >= k*``.

Classification, with the thresholds of :class:`CollapseThresholds`:

* **failed to learn**: ``G < learned_fraction * (R_ref - B)``, where ``R_ref`` is a
  reference return on the task (e.g. the final-return IQM of tuned Adam).  A run that never
  learned cannot collapse; counting it as collapsed would mix two failures;
* **collapsed**: learned, ``D >= drop`` and the drawdown stays ``>= drop`` on every point of
  a stretch that **ends at the last point** and covers at least ``persistence`` of the run:
  the loss persists to the end.  A dip that recovers ends with a small drawdown, so it is
  not a collapse however deep it was (its depth still shows in ``MDD``);
* **learned** otherwise.

Per arm: the collapse rate ``k/N`` over all seeds with an exact (Clopper-Pearson) binomial
interval, computed from Beta quantiles (:func:`clopper_pearson`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

LEARNED, FAILED, COLLAPSED = "learned", "failed to learn", "collapsed"
STATUSES = (LEARNED, FAILED, COLLAPSED)


class CollapseInputError(ValueError):
    """A curve or threshold the detector cannot use."""


@dataclass(frozen=True)
class CollapseThresholds:
    """Detector settings; the defaults are docs/studies.md §2.2's (δ = 0.5 as the slides' ">50% drop")."""

    window: int = 5  # trailing-mean width, in curve points
    learned_fraction: float = 0.25  # gamma: gain needed to count as learned, fraction of R_ref - B
    drop: float = 0.5  # delta: normalised loss of the gain that counts as collapse
    persistence: float = 0.1  # fraction of the run the drawdown must stay >= drop, up to the end
    final_fraction: float = 0.1  # last part of the run that defines the final return

    def __post_init__(self) -> None:
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise CollapseInputError(f"window must be a positive integer, got {self.window!r}")
        for name in ("learned_fraction", "drop"):
            if not getattr(self, name) > 0:
                raise CollapseInputError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("persistence", "final_fraction"):
            if not 0 < getattr(self, name) <= 1:
                raise CollapseInputError(f"{name} must be in (0, 1], got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SeedVerdict:
    status: str
    peak: float  # P, raw return
    peak_index: int  # k*
    final: float  # F, raw return
    gain: float  # G = P - B
    drop: float  # D, normalised final drop (nan when G <= 0)
    max_drawdown: float  # MDD, normalised (nan when G <= 0)
    raw_max_drawdown: float  # peak-to-valley loss of S in return units (Chan et al.'s MaxDrawdown)
    post_peak_deficit: float  # A (nan when G <= 0)


def trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` points up to and including each point (fewer at the start)."""
    values = np.asarray(values, np.float64)
    sums = np.cumsum(np.concatenate([[0.0], values]))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(0, ends - window)
    return (sums[ends] - sums[starts]) / (ends - starts)


def drawdown(smoothed: np.ndarray) -> np.ndarray:
    """Running peak minus current value (return units)."""
    return np.maximum.accumulate(smoothed) - smoothed


def _trailing_run(mask: np.ndarray) -> int:
    """Number of consecutive True values ending at the last element."""
    false = np.flatnonzero(~mask)
    return len(mask) if false.size == 0 else len(mask) - 1 - int(false[-1])


def classify_curve(
    returns, baseline: float, reference: float, thresholds: CollapseThresholds = CollapseThresholds()
) -> SeedVerdict:
    """The verdict on one seed's curve (evenly spaced points, oldest first)."""
    returns = np.asarray(returns, np.float64)
    if returns.ndim != 1 or returns.size < 2:
        raise CollapseInputError(f"a curve needs at least 2 points, got shape {returns.shape}")
    if not np.all(np.isfinite(returns)):
        raise CollapseInputError("the curve has non-finite points; bin or drop them first")
    t = thresholds
    smoothed = trailing_mean(returns, t.window)
    peak_index = int(np.argmax(smoothed))
    peak = float(smoothed[peak_index])
    final_points = max(1, int(np.ceil(t.final_fraction * smoothed.size)))
    final = float(smoothed[-final_points:].mean())
    gain = peak - baseline
    losses = drawdown(smoothed)
    learned = gain > 0 and gain >= t.learned_fraction * (reference - baseline)
    if gain > 0:
        normalised = losses / gain
        drop = (peak - final) / gain
        max_dd = float(normalised.max())
        deficit = float(((peak - smoothed[peak_index:]) / gain).mean())
    else:
        normalised, drop, max_dd, deficit = None, np.nan, np.nan, np.nan
    if not learned:
        status = FAILED
    else:
        persistent = _trailing_run(normalised >= t.drop) >= t.persistence * smoothed.size
        status = COLLAPSED if drop >= t.drop and persistent else LEARNED
    return SeedVerdict(status, peak, peak_index, final, gain, float(drop), max_dd, float(losses.max()), deficit)


def clopper_pearson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for ``successes / trials``: Beta quantiles, one-sided ends at 0 and 1."""
    from scipy.stats import beta

    if trials < 1 or not 0 <= successes <= trials:
        raise CollapseInputError(f"need 0 <= successes <= trials and trials >= 1, got {successes}/{trials}")
    if not 0 < confidence < 1:
        raise CollapseInputError(f"confidence must be in (0, 1), got {confidence}")
    tail = (1.0 - confidence) / 2.0
    low = 0.0 if successes == 0 else float(beta.ppf(tail, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(beta.ppf(1.0 - tail, successes + 1, trials - successes))
    return low, high
