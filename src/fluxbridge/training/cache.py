"""The control variate's cache: its entries, and when it is rebuilt.

The control-variate estimator of a regional total is ``H·g + (sampled correction of f − g)``
with ``g`` a cached prediction of the network. :class:`ControlVariateCache` builds ``g`` from
the network (:meth:`ControlVariateCache.refresh`) at the start of every epoch (or every
``refresh_every`` epochs). The estimate is unbiased whatever the cache: its totals are exact.
``docs/method.md`` gives the measurements behind this design, and the parts that were tried
and removed because they did not change the regional error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fluxbridge.operators import CacheGroups, ControlVariateEstimator, default_group_size
from fluxbridge.training.checkpoint import cpu_state
from fluxbridge.training.gridnet import GridNetwork
from fluxbridge.tuning import CacheTuning


class ControlVariateCache:
    """The cache of a :class:`ControlVariateEstimator`, rebuilt from a training network.

    Parameters
    ----------
    net
        The network on the grid.
    estimator
        The control-variate estimator whose cache this is.
    tuning
        The cache's settings.
    """

    def __init__(self, net: GridNetwork, estimator: ControlVariateEstimator,
                 tuning: CacheTuning) -> None:
        self.net, self.estimator, self.tuning = net, estimator, tuning
        self.refreshes = 0
        self.state: dict[str, torch.Tensor] | None = None  # the network at the last refresh
        self._center: tuple[CacheGroups, np.ndarray] | None = None

    def groups(self) -> CacheGroups:
        """The cache's entries and their mean predictors (built once per grid and grouping):
        times grouped by month (``features="monthly"``) or by day, then each vegetation class's
        (time group, cell) pairs grouped into at most ``group_size`` by a k-d partition of their
        standardised predictors."""
        size = self.tuning.group_size or default_group_size(self.net.grid)
        return CacheGroups.of(self.net.grid, self.tuning.features, size)

    def due(self, epoch: int) -> bool:
        """Whether the cache is rebuilt at the start of epoch ``epoch``: when it was never
        built, and every ``refresh_every`` epochs."""
        every = self.tuning.refresh_every
        return self.state is None or (every > 0 and epoch % every == 0)

    def refresh(self) -> None:
        """Rebuild the cache from the network: at each entry's mean predictors, or with
        ``linear`` its first-order expansion there (plus the input gradient times each
        cell-day's departure from the mean, so that it follows the weather)."""
        self.state = cpu_state(self.net.model)
        self.refreshes += 1
        groups = self.groups()
        if groups.entry is None:  # each cell-day its own entry: the model itself
            self.estimator.set_cache(self.net.predict_grid(offset=False))
            return
        center = self._cache_center(groups)
        g, slope = self.net.predict(center, groups.igbp, slope=self.tuning.linear)
        if not self.tuning.linear:
            self.estimator.set_cache(g, groups.time_group, groups.entry)
            return

        def inputs(col: np.ndarray) -> np.ndarray:
            return self.net.normalised(self.net.rows.index_select(0, torch.from_numpy(col))
                                       ).numpy()

        self.estimator.set_cache(g, groups.time_group, groups.entry, slope=slope,
                                 center=center, inputs=inputs)

    def _cache_center(self, groups: CacheGroups) -> np.ndarray:
        if self._center is None or self._center[0] is not groups:
            assert groups.values is not None
            self._center = (groups, self.net.normalised(groups.values).numpy())
        return self._center[1]

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps: the network the cache was built from."""
        return {"cache_state": self.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Rebuild the cache of a checkpoint from the network it was built from (the
        network's current state is kept)."""
        if state.get("cache_state") is None:
            return
        current = cpu_state(self.net.model)
        self.net.model.load_state_dict(state["cache_state"])
        self.refresh()
        self.net.model.load_state_dict(current)
