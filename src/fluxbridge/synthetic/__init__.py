"""The twin world: a reproducible synthetic Earth with known true NEE, in real file formats.

``synthesize(out)`` writes FLUXNET2015 site CSVs, ERA5 and MODIS NetCDF, an inversion ensemble,
fire and lateral corrections, the region mask, the truth and ``manifest.json``
(docs/twin-world-files.md).
"""

from fluxbridge.synthetic.config import WorldConfig, load_world_config
from fluxbridge.synthetic.world import synthesize

__all__ = ["WorldConfig", "load_world_config", "synthesize"]
