"""What is written for people is rounded, so 1e-12 of noise leaves the written text alone."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from ephys2expr.rounding import for_people, round_table, significant


def test_significant_digits_and_special_values():
    assert significant(0.123456789) == 0.1235
    assert significant(-1234.5678) == -1235.0
    assert significant(2.5e-7) == 2.5e-7
    assert math.isnan(significant(float("nan"))) and significant(float("inf")) == float("inf")
    assert str(significant(-0.0)) == "0.0"
    report = {"a": [0.1234567, 3, True, "x"], "b": {"c": np.float64(2 / 3)}, "d": (1.0 / 7,)}
    assert for_people(report) == {"a": [0.1235, 3, True, "x"], "b": {"c": 0.6667}, "d": (0.1429,)}


def test_noise_of_1e_12_does_not_change_the_written_report_or_table():
    """Values of every magnitude a report holds, perturbed by 1e-12 relative: the rounded
    JSON and CSV text are the same (unrounded, every one of them differs)."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=2000) * 10.0 ** rng.integers(-4, 5, size=2000)
    noisy = values * (1 + 1e-12 * rng.choice([-1, 1], size=values.size))
    assert json.dumps(values.tolist()) != json.dumps(noisy.tolist())
    assert json.dumps(for_people(values.tolist())) == json.dumps(for_people(noisy.tolist()))
    a = round_table(pd.DataFrame({"x": values, "n": np.arange(values.size)}))
    b = round_table(pd.DataFrame({"x": noisy, "n": np.arange(values.size)}))
    assert a.to_csv(float_format="%.10g") == b.to_csv(float_format="%.10g")
    assert a["n"].dtype == np.int64  # only the float columns are rounded
