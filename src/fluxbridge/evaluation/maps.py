"""Maps of NEE: several fields side by side on one colour scale, with units and sign."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from fluxbridge.errors import InputError


def _time_mean(da: xr.DataArray) -> xr.DataArray:
    for dim in ("lat", "lon"):
        if dim not in da.dims:
            raise InputError("map field lacks a dimension", variable=dim,
                             expected="a (lat, lon) or (time, lat, lon) field")
    field = da.mean("time") if "time" in da.dims else da
    return field.transpose("lat", "lon")


def nee_maps(fields: Mapping[str, xr.DataArray], *, difference: bool = False,
             robust: float = 98.0, ncols: int = 3) -> Figure:
    """Maps of NEE fields (time means) on one colour scale, centred at zero, one colour bar.

    Parameters
    ----------
    fields
        Panel title → NEE (lat, lon) or (time, lat, lon) [g m-2 d-1], positive to the
        atmosphere; every field on the same grid.
    difference
        The fields are differences (e.g. dual minus site-only): another diverging colour map.
    robust
        Percentile of |NEE| over every panel that sets the shared colour limits.
    ncols
        Panels per row.

    Returns
    -------
    Figure
        One panel per field and a shared colour bar labelled with units and sign.
    """
    if not fields:
        raise InputError("no field to map", variable="fields", expected="at least one field")
    means = {title: _time_mean(da) for title, da in fields.items()}
    pooled = np.concatenate([np.abs(np.asarray(f.values, dtype=float)).ravel()
                             for f in means.values()])
    finite = pooled[np.isfinite(pooled)]
    vmax = float(np.percentile(finite, robust)) if finite.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    ncols = min(ncols, len(means))
    nrows = int(np.ceil(len(means) / ncols))
    fig = Figure(figsize=(4.6 * ncols + 0.8, 2.7 * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(means):]:
        ax.set_visible(False)
    for ax, (title, field) in zip(axes, means.items()):
        mesh = ax.pcolormesh(field["lon"].values, field["lat"].values, field.values,
                             cmap="PuOr_r" if difference else "RdBu_r", vmin=-vmax, vmax=vmax,
                             shading="nearest")
        ax.set(title=title, xlim=(-180, 180), ylim=(-60, 90), xticks=[-120, 0, 120],
               yticks=[-30, 0, 30, 60])
        ax.tick_params(labelsize=7)
    units = next(iter(fields.values())).attrs.get("units", "g m-2 d-1")
    what = "ΔNEE" if difference else "NEE"
    fig.colorbar(mesh, ax=list(axes[:len(means)]), shrink=0.9,
                 label=f"{what} [{units}] (> 0: source)")
    return fig
