"""The learning-rate schedule: its known values, its decay, and the trainer following it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fluxbridge.training.schedule import lr_factor


def test_constant_schedule_is_one_every_epoch():
    assert all(lr_factor(e, 10, "constant") == 1.0 for e in range(12))


def test_cosine_starts_at_one_ends_at_the_floor_and_is_half_way_in_the_middle():
    assert lr_factor(0, 11, "cosine", 0.1) == pytest.approx(1.0)
    assert lr_factor(10, 11, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_factor(5, 11, "cosine", 0.1) == pytest.approx(0.55)
    # a quarter of the way: floor + (1 - floor) (1 + cos(π/4)) / 2
    assert lr_factor(2, 9, "cosine", 0.0) == pytest.approx((1 + math.cos(math.pi / 4)) / 2)


def test_cosine_decays_monotonically_and_stays_at_the_floor_past_the_last_epoch():
    factors = np.array([lr_factor(e, 30, "cosine", 0.01) for e in range(40)])
    assert np.all(np.diff(factors) <= 0) and np.all(np.diff(factors[:30]) < 0)
    assert factors[29:] == pytest.approx(0.01)


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="schedule"):
        lr_factor(0, 10, "linear")


def test_trainer_sets_each_epochs_learning_rate_from_the_schedule(configure, make_trainer):
    cfg = configure(network={"epochs": 5, "lr": 0.01},
                    tuning={"training": {"lr_schedule": "cosine", "lr_floor": 0.1}})
    trainer = make_trainer(cfg)
    seen = []
    for number in range(5):
        trainer.epoch(number)
        seen.append(trainer.optimizer.param_groups[0]["lr"])
    expected = [0.01 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * e / 4))) for e in range(5)]
    np.testing.assert_allclose(seen, expected, rtol=1e-12)
