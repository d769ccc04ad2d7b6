"""The network on the grid: its inputs at grid columns are those of the normaliser, and its
predictions at cells carry the grid offset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch


def test_cell_inputs_equal_normalised_grid_take(world, configure, make_trainer):
    """The torch path of the step gives the numbers of Normaliser.transform(grid.take(...))."""
    trainer = make_trainer(configure(constraint={"lambda_regional": 1.0}))
    net = trainer.net
    grid = world.grid
    rng = np.random.default_rng(3)
    ti = rng.integers(0, grid.times.size, 500)
    ci = rng.integers(0, grid.n_cell, 500)
    X, igbp = grid.take(ti, ci)
    x, c = net.cell_inputs(ti, ci)
    np.testing.assert_array_equal(x.numpy(), trainer.normaliser.transform(X))
    np.testing.assert_array_equal(c.numpy(), igbp)
    region = torch.as_tensor(grid.region[ci])
    doy = torch.as_tensor(pd.DatetimeIndex(grid.times).day_of_year.to_numpy()[ti])
    with torch.no_grad():
        expected = trainer.model(torch.from_numpy(trainer.normaliser.transform(X)),
                                 torch.as_tensor(igbp)) + trainer.model.grid_offset(region, doy)
        torch.testing.assert_close(net.predict_cells(ti, ci), expected, rtol=0, atol=0)
    with pytest.raises(IndexError):
        net.cell_inputs(np.array([grid.times.size]), np.array([0]))


def test_predict_grid_is_the_network_at_every_cell_day(world, configure, make_trainer):
    """The whole grid in chunks of days equals the network at each cell-day's inputs (plus the
    grid offset when asked), whatever the chunk."""
    trainer = make_trainer(configure(constraint={"lambda_regional": 1.0}))
    net = trainer.net
    with torch.no_grad():
        trainer.model.offset.weight.normal_(0, 0.3)
    grid = world.grid
    t, c = (a.ravel() for a in np.meshgrid(np.arange(40), np.arange(grid.n_cell),
                                           indexing="ij"))
    with torch.no_grad():
        cells = net.predict_cells(t, c).numpy().reshape(40, grid.n_cell)
        network = trainer.model(*net.cell_inputs(t, c)).numpy().reshape(40, grid.n_cell)
    for chunk in (16, 7):
        np.testing.assert_allclose(net.predict_grid(chunk_days=chunk)[:40], cells,
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(net.predict_grid(chunk_days=chunk, offset=False)[:40],
                                   network, rtol=1e-5, atol=1e-5)
    assert np.abs(cells - network).max() > 0.1
