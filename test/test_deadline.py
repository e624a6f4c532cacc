"""The deadline controller lowers K after consecutive misses and raises it with headroom."""
import pytest

from mmtok_ros.runtime.predictor import DeadlineController


def test_one_miss_does_not_change_the_scale():
    c = DeadlineController(100.0, patience=3)
    assert c.update(150.0) is None and c.scale == 1.0


def test_consecutive_misses_lower_the_scale_down_to_the_bound():
    c = DeadlineController(100.0, min_scale=0.7, step=0.1, patience=2)
    changes = [c.update(150.0) for _ in range(10)]
    assert [x for x in changes if x is not None] == [0.9, 0.8, 0.7]
    assert c.scale == 0.7


def test_headroom_raises_the_scale_again_but_not_above_the_maximum():
    c = DeadlineController(100.0, min_scale=0.5, step=0.25, patience=1, headroom=0.6)
    c.update(150.0)
    assert c.scale == 0.75
    assert c.update(80.0) is None          # under the deadline but not under 60 ms: hold
    assert c.update(40.0) == 1.0
    assert c.update(40.0) is None and c.scale == 1.0


def test_bounds_are_checked():
    with pytest.raises(ValueError):
        DeadlineController(100.0, min_scale=0.0)
