"""Static geography of the twin world: grid, land, regions, continentality and smooth noise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy.ndimage import gaussian_filter
from scipy.signal import lfilter

from fluxbridge.regions import builtin_regions, region_names


def _interp_matrix(fine: np.ndarray, coarse: np.ndarray, period: float | None = None
                   ) -> np.ndarray:
    """Linear interpolation weights (fine, coarse); periodic when ``period`` is given."""
    n = coarse.size
    if period is not None:
        coarse = np.concatenate([coarse, [coarse[0] + period]])
        fine = np.mod(fine - coarse[0], period) + coarse[0]
    eye = np.eye(coarse.size)
    w = np.stack([np.interp(fine, coarse, eye[k]) for k in range(coarse.size)], axis=1)
    if period is not None:
        w[:, 0] += w[:, n]
        w = w[:, :n]
    return w


class SmoothNoise:
    """Spatially smooth Gaussian noise with unit variance, AR(1) in time.

    Independent normal values on a coarse grid (spacing ``scale_deg``) are interpolated
    bilinearly to the model grid and renormalised to unit variance in every cell. The AR(1)
    state carries over between calls, so a year-by-year caller gets one continuous series.

    Parameters
    ----------
    rng
        Random generator owned by this noise source.
    lat, lon
        Model grid cell centres [degree].
    scale_deg
        Spacing of the coarse grid [degree]: the correlation length.
    rho
        Lag-one autocorrelation of the daily series [1].
    """

    def __init__(self, rng: np.random.Generator, lat: np.ndarray, lon: np.ndarray,
                 scale_deg: float, rho: float = 0.0) -> None:
        self.rng = rng
        self.rho = rho
        clat = np.arange(-90.0, 90.0 + 1e-9, scale_deg)
        clon = np.arange(-180.0, 180.0 - 1e-9, scale_deg)
        self.wlat = _interp_matrix(lat, clat)
        self.wlon = _interp_matrix(lon, clon, period=360.0)
        sd = np.sqrt(np.outer((self.wlat**2).sum(1), (self.wlon**2).sum(1)))
        self.norm = (1.0 / sd).astype(np.float32)
        self.state: np.ndarray | None = None

    def next(self, n_time: int) -> np.ndarray:
        """The next ``n_time`` fields (time, lat, lon) [1], float32."""
        shape = (n_time, self.wlat.shape[1], self.wlon.shape[1])
        innov = self.rng.standard_normal(shape)
        if self.rho > 0:
            innov *= np.sqrt(1.0 - self.rho**2)
            if self.state is None:
                self.state = self.rng.standard_normal(shape[1:])
            zi = (self.rho * self.state)[None]
            coarse, _ = lfilter([1.0], [1.0, -self.rho], innov, axis=0, zi=zi)
            self.state = coarse[-1]
        else:
            coarse = innov
        f32 = np.float32
        fine = np.einsum("ia,tab,jb->tij", self.wlat.astype(f32), coarse.astype(f32),
                         self.wlon.astype(f32), optimize=True)
        return fine * self.norm


@dataclass
class Geography:
    """Static fields of the world on the canonical grid.

    Attributes
    ----------
    regions
        Canonical regions dataset (``region``, ``cell_area`` [m2], ``land_fraction`` [1]).
    lat2d, lon2d
        Cell-centre coordinates (lat, lon) [degree].
    continentality
        Smoothed land fraction (lat, lon) [0..1], a distance-from-ocean proxy.
    moisture
        Static smooth random field (lat, lon) [1]: wetter and drier landscapes.
    land
        Boolean (lat, lon): cells with any land.
    ice
        Boolean (lat, lon): Antarctica and Greenland.
    """

    regions: xr.Dataset
    lat2d: np.ndarray
    lon2d: np.ndarray
    continentality: np.ndarray
    moisture: np.ndarray
    land: np.ndarray
    ice: np.ndarray

    @property
    def lat(self) -> np.ndarray:
        return self.regions["lat"].values

    @property
    def lon(self) -> np.ndarray:
        return self.regions["lon"].values

    @property
    def land_area(self) -> np.ndarray:
        """Land area of each cell (lat, lon) [m2]."""
        return (self.regions["cell_area"] * self.regions["land_fraction"]).values

    @property
    def names(self) -> dict[int, str]:
        return region_names(self.regions)


def build_geography(resolution_deg: float, rng: np.random.Generator) -> Geography:
    """Grid, real land mask, TransCom-like regions and static climate modifiers."""
    regions = builtin_regions("transcom_like", resolution_deg)
    lat, lon = regions["lat"].values, regions["lon"].values
    lat2d, lon2d = np.meshgrid(lat, lon, indexing="ij")
    frac = regions["land_fraction"].values
    sigma = 8.0 / resolution_deg
    cont = gaussian_filter(frac, sigma=sigma, mode=("nearest", "wrap"))
    cont = np.clip(cont / max(cont.max(), 1e-6), 0.0, 1.0)
    moisture = SmoothNoise(rng, lat, lon, scale_deg=15.0).next(1)[0]
    ice = (lat2d < -60) | ((lat2d > 59) & (lon2d > -74) & (lon2d < -11))
    return Geography(regions=regions, lat2d=lat2d, lon2d=lon2d,
                     continentality=cont.astype(np.float32), moisture=moisture,
                     land=frac > 0, ice=ice & (frac > 0))
