"""The per-seed collapse detector on constructed curves, and the exact binomial interval."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from rlopt.analysis.collapse import (
    COLLAPSED,
    FAILED,
    LEARNED,
    CollapseInputError,
    CollapseThresholds,
    classify_curve,
    clopper_pearson,
    trailing_mean,
)

BASELINE, REFERENCE = 0.0, 100.0


def rise_then(after: np.ndarray, rise_points: int = 30, level: float = 100.0) -> np.ndarray:
    return np.concatenate([np.linspace(0.0, level, rise_points), after])


def test_trailing_mean_by_hand():
    np.testing.assert_allclose(trailing_mean(np.array([1.0, 2.0, 3.0, 4.0]), 2), [1.0, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(trailing_mean(np.array([3.0, 1.0, 2.0]), 5), [3.0, 2.0, 2.0])


def test_metrics_by_hand():
    # window 1: S = R.  P = 10 at k* = 1; the last half (2 points) averages 4, so D = 0.6;
    # the drawdown is 0.6 on both last points, A = mean(0, 0.6, 0.6) = 0.4.
    thresholds = CollapseThresholds(window=1, final_fraction=0.5, persistence=0.5)
    verdict = classify_curve([0.0, 10.0, 4.0, 4.0], 0.0, 10.0, thresholds)
    assert (verdict.peak, verdict.peak_index, verdict.final, verdict.gain) == (10.0, 1, 4.0, 10.0)
    assert verdict.drop == pytest.approx(0.6)
    assert verdict.max_drawdown == pytest.approx(0.6)
    assert verdict.raw_max_drawdown == pytest.approx(6.0)
    assert verdict.post_peak_deficit == pytest.approx(0.4)
    assert verdict.status == COLLAPSED


def test_collapse_that_persists_to_the_end():
    curve = rise_then(np.concatenate([np.full(30, 100.0), np.full(40, 10.0)]))
    verdict = classify_curve(curve, BASELINE, REFERENCE)
    assert verdict.status == COLLAPSED
    assert verdict.drop == pytest.approx(0.9)
    assert verdict.peak == pytest.approx(100.0)


def test_transient_dip_that_recovers_is_not_collapse():
    after = np.concatenate([np.full(20, 100.0), np.full(15, 10.0), np.full(35, 100.0)])
    verdict = classify_curve(rise_then(after), BASELINE, REFERENCE)
    assert verdict.status == LEARNED
    assert verdict.max_drawdown == pytest.approx(0.9)  # deep, but it recovered
    assert verdict.drop == pytest.approx(0.0)


def test_curve_that_never_learns_is_failed_not_collapsed():
    rng = np.random.default_rng(0)
    flat = 5.0 + rng.normal(0.0, 3.0, 100)  # best smoothed gain well under 0.25 * 100
    verdict = classify_curve(flat, BASELINE, REFERENCE)
    assert verdict.status == FAILED
    # A learner that rose and fell back to nothing is judged the same way only if it never
    # gained enough: here 20 < 25.
    small = rise_then(np.full(70, 0.0), level=20.0)
    assert classify_curve(small, BASELINE, REFERENCE).status == FAILED


def test_noisy_plateau_is_learned():
    rng = np.random.default_rng(1)
    curve = rise_then(100.0 + rng.normal(0.0, 20.0, 70))
    verdict = classify_curve(curve, BASELINE, REFERENCE)
    assert verdict.status == LEARNED
    assert verdict.drop < 0.5


def test_late_drop_shorter_than_persistence_is_not_collapse():
    # The crash covers the last 5 points; persistence asks for 10% of 100 points.
    curve = rise_then(np.concatenate([np.full(65, 100.0), np.full(5, 0.0)]))
    assert classify_curve(curve, BASELINE, REFERENCE, CollapseThresholds(window=1)).status == LEARNED
    assert (
        classify_curve(
            curve, BASELINE, REFERENCE, CollapseThresholds(window=1, persistence=0.05, final_fraction=0.05)
        ).status
        == COLLAPSED
    )


def test_negative_returns_are_normalised_by_the_gain():
    # Baseline -200 (untrained policy); peak -50; final -170: D = 120 / 150 = 0.8.
    curve = np.concatenate([np.linspace(-200, -50, 30), np.full(30, -50.0), np.full(40, -170.0)])
    verdict = classify_curve(curve, -200.0, -50.0)
    assert verdict.status == COLLAPSED
    assert verdict.drop == pytest.approx(0.8)


def test_bad_input_is_named():
    with pytest.raises(CollapseInputError, match="non-finite"):
        classify_curve([0.0, np.nan, 1.0], 0.0, 1.0)
    with pytest.raises(CollapseInputError, match="window"):
        CollapseThresholds(window=0)
    with pytest.raises(CollapseInputError, match="persistence"):
        CollapseThresholds(persistence=1.5)


@pytest.mark.parametrize("k,n", [(0, 15), (13, 15), (15, 15), (1, 1), (3, 20), (10, 30), (0, 1)])
def test_clopper_pearson_matches_scipy(k, n):
    expected = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    low, high = clopper_pearson(k, n)
    assert low == pytest.approx(expected.low, abs=1e-9)
    assert high == pytest.approx(expected.high, abs=1e-9)


def test_clopper_pearson_values_quoted_in_the_protocol():
    assert clopper_pearson(0, 15) == pytest.approx((0.0, 0.218), abs=1e-3)
    assert clopper_pearson(13, 15) == pytest.approx((0.595, 0.983), abs=1e-3)
    with pytest.raises(CollapseInputError):
        clopper_pearson(3, 2)
