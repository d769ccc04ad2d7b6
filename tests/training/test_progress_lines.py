"""What training shows while it runs: model, epoch, site and regional loss; the estimator's
diagnostics only in the debug log."""

from __future__ import annotations

import logging

from fluxbridge.training import train_network


def _train(world, sites, cfg):
    return train_network(world.samples, cfg, train_sites=sites[:-3], val_sites=sites[-3:],
                         grid=world.grid, targets=world.targets, regions=world.regions,
                         progress=True, name="dual fold 2/3")


def test_each_epoch_shows_losses_and_hides_estimator_diagnostics(world, sites, configure,
                                                                 caplog):
    cfg = configure(network={"epochs": 2}, constraint={"lambda_regional": 1.0})
    caplog.set_level(logging.INFO, logger="fluxbridge")
    _train(world, sites, cfg)
    lines = [r.getMessage() for r in caplog.records if r.name == "fluxbridge.progress"]
    assert lines and lines[-1].startswith("dual fold 2/3: epoch 2/2 | site ")
    assert " regional " in lines[-1] and " val " in lines[-1]
    text = caplog.text
    assert "estimate_var" not in text and "refreshes" not in text


def test_the_debug_log_has_the_estimator_diagnostics(world, sites, configure, caplog):
    cfg = configure(network={"epochs": 1}, constraint={"lambda_regional": 1.0})
    caplog.set_level(logging.DEBUG, logger="fluxbridge")
    _train(world, sites, cfg)
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any(m.startswith("dual fold 2/3 epoch 1:") and "refreshes" in m for m in debug)
