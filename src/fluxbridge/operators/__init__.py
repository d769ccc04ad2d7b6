"""The one observation operator H, its sparse estimators and the control-variate cache.

* :mod:`~fluxbridge.operators.operator` — H: regional monthly totals as a sparse matrix over
  land cell-days (:class:`RegionalOperator`, footprint rows: :class:`LinearOperator`) and on
  xarray fields (:func:`regional_totals`);
* :mod:`~fluxbridge.operators.sample`, :mod:`~fluxbridge.operators.resampled`,
  :mod:`~fluxbridge.operators.control_variate` — estimators of H·f from sampled cell-days;
  :mod:`~fluxbridge.operators.estimators` picks one by name;
* :mod:`~fluxbridge.operators.footprint` — footprint rows of H for tower mole fractions
  (:class:`FootprintOperator`), sampled by the same estimators;
* :mod:`~fluxbridge.operators.cache` — the groups of cell-days of the control variate's cache.
"""

from fluxbridge.operators.cache import CacheGroups, default_group_size
from fluxbridge.operators.control_variate import ControlVariateEstimator
from fluxbridge.operators.estimators import (
    ESTIMATORS,
    make_estimator,
    replicates,
    squared_error,
    squared_error_grad,
)
from fluxbridge.operators.footprint import UMOL_M2_S_PER_GC_M2_D, FootprintOperator
from fluxbridge.operators.operator import (
    LinearOperator,
    RegionalOperator,
    global_annual_totals,
    monthly_totals,
    region_weights,
    regional_totals,
    totals_frame,
)
from fluxbridge.operators.resampled import SAMPLINGS, FixedEstimator, ResampledEstimator
from fluxbridge.operators.sample import Estimator, ExactEstimator, Sample

__all__ = [
    "ESTIMATORS",
    "SAMPLINGS",
    "UMOL_M2_S_PER_GC_M2_D",
    "CacheGroups",
    "ControlVariateEstimator",
    "Estimator",
    "ExactEstimator",
    "FixedEstimator",
    "FootprintOperator",
    "LinearOperator",
    "RegionalOperator",
    "ResampledEstimator",
    "Sample",
    "default_group_size",
    "global_annual_totals",
    "make_estimator",
    "monthly_totals",
    "region_weights",
    "regional_totals",
    "replicates",
    "squared_error",
    "squared_error_grad",
    "totals_frame",
]
