"""The models of a run, what each trains with, and the towers' comparison.

A run trains the site-only network (no constraint), the dual one (every term its inputs
allow), and the models it is compared with (``baselines``):

* ``rf``, ``xgboost`` — FLUXCOM-style trees on the towers alone;
* ``published`` — the published setting of the constraint (Upton et al. 2024): the regional
  term on the network itself, no grid correction, one fixed sparse draw of K cell-days per
  region-month (``estimator: fixed``). It is cross-validated, upscaled and scored like the
  dual model, so that a user sees what this method's corrections add to the published one.

When the experiment has tower inputs and both the regional and the footprint terms are on, it
also trains, once on every site (kept out of cross-validation and leave-region-out), the two
networks that separate them (``constraint.compare_tower_terms``, default true):

* ``footprint_only`` — the footprint term alone (λ = 0, λ_f as configured);
* ``regional_only`` — the regional term alone (no towers).

They are saved and upscaled like the others; the evaluation adds the section of
:mod:`fluxbridge.evaluation.tower_section`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fluxbridge.config import ExperimentConfig
from fluxbridge.errors import InputError
from fluxbridge.grid_features import GridFeatures
from fluxbridge.io.inputs import World
from fluxbridge.io.run_products import read_land_cells
from fluxbridge.io.towers import TowerObservations

if TYPE_CHECKING:
    from fluxbridge.evaluation.summary import RunSummary

log = logging.getLogger(__name__)

SITE_ONLY, DUAL, RF, XGB, PUBLISHED = "site_only", "dual", "rf", "xgboost", "published"
TREES = (RF, XGB)
FOOTPRINT_ONLY, REGIONAL_ONLY = "footprint_only", "regional_only"
TOWER_COMPARISON = (SITE_ONLY, FOOTPRINT_ONLY, REGIONAL_ONLY, DUAL)
"""The rows of the towers' comparison."""
CONSTRAINED = (DUAL, PUBLISHED)
"""The cross-validated networks trained with the regional term."""
TOWER_MODELS = (FOOTPRINT_ONLY, REGIONAL_ONLY)
"""The networks of the towers' comparison, besides the site-only and dual ones."""

TERMS = {SITE_ONLY: (False, False), FOOTPRINT_ONLY: (False, True),
         REGIONAL_ONLY: (True, False), DUAL: (True, True), PUBLISHED: (True, False)}
"""Network → (regional term, footprint term)."""

PUBLISHED_CONSTRAINT = {"correction": "none", "estimator": "fixed"}
"""The constraint's settings of the published method; λ, K and the sampling are the run's."""


def model_names(cfg: ExperimentConfig, towers: TowerObservations | None) -> list[str]:
    """Every model of a run, in the report's order: site-only, dual, the trees, the published
    setting (with the regional term on) and the towers' comparison (:func:`extra`)."""
    base = cfg.baselines
    return [SITE_ONLY, DUAL, *([RF] if base.random_forest else []),
            *([XGB] if base.xgboost else []),
            *([PUBLISHED] if base.published and cfg.constrained else []), *extra(cfg, towers)]


def extra(cfg: ExperimentConfig, towers: TowerObservations | None) -> list[str]:
    """The comparison's extra networks: :data:`TOWER_MODELS` with tower inputs, both terms on
    (λ > 0, λ_f > 0) and ``constraint.compare_tower_terms``; none otherwise."""
    con = cfg.constraint
    on = (towers is not None and con.compare_tower_terms and cfg.constrained
          and con.lambda_footprint > 0)
    return list(TOWER_MODELS) if on else []


def network_terms(name: str, cfg: ExperimentConfig, towers: TowerObservations | None
                  ) -> tuple[ExperimentConfig, TowerObservations | None]:
    """The configuration (λ, the published constraint) and tower observations a network of
    :data:`TERMS` trains with."""
    regional, footprint = TERMS[name]
    if name == PUBLISHED:
        cfg = cfg.model_copy(update={"constraint": cfg.constraint.model_copy(
            update=PUBLISHED_CONSTRAINT)})
    return (cfg if regional else cfg.with_lambda(0.0)), (towers if footprint else None)


def add_section(summary: RunSummary, products: dict[str, Any],
                towers: TowerObservations | None, grid: GridFeatures, inputs: World,
                truth: pd.DataFrame | None) -> None:
    """Append the towers' comparison to a run's summary (section and ``metrics["towers"]``);
    nothing when the run has no :data:`TOWER_MODELS`.

    Parameters
    ----------
    summary
        The run's evaluation, completed in place.
    products
        Model name → its upscaled products (``grid``: daily NEE NetCDF [gC m-2 d-1];
        ``regional_csv``: ``region, time, nee_tgc`` [Tg month-1]).
    towers
        The run's tower observations.
    grid
        The land cells' predictors (the fields' cells and days).
    inputs
        The experiment's inputs (regions; the true NEE grid where there is one).
    truth
        True regional totals [Tg month-1], or None (real data).
    """
    from fluxbridge.evaluation.tower_section import (
        comparison_table,
        enhancement_fit,
        observed_enhancement,
        tower_section,
    )
    from fluxbridge.evaluation.towers import footprint_scores
    from fluxbridge.training.footprint import footprint_operator

    if towers is None or not all(n in products for n in TOWER_MODELS):
        return
    op = footprint_operator(towers, grid, inputs.regions)
    observed = observed_enhancement(towers, op)
    fields = {n: read_land_cells(products[n].grid, grid.lat_index, grid.lon_index)
              for n in TOWER_COMPARISON if n in products}
    fit = enhancement_fit(op, observed, fields)
    true_field = None if truth is None else true_land_field(inputs, grid)
    scores, seen, floor = None, None, None
    if true_field is not None:
        series = {n: pd.read_csv(products[n].regional_csv) for n in fields}
        scores, seen = footprint_scores(op, grid, inputs.regions, series, fields, truth,
                                        true_field)
        floor = float(enhancement_fit(op, observed, {"truth": true_field})
                      ["towers_rmse_ppm"].iloc[0])
    table = comparison_table(fit, scores)
    summary.sections.append(tower_section(table, len(op.obs_index), seen, floor))
    summary.metrics["towers"] = {"table": table, "fit": fit, "scores": scores,
                                 "footprint_region": seen, "truth_towers_rmse_ppm": floor}


def true_land_field(inputs: World, grid: GridFeatures) -> np.ndarray | None:
    """The true daily NEE (n_time, n_cell) [gC m-2 d-1] on the model's land cells; None
    without a true grid (real data) or when it is not on the model's time steps."""
    try:
        truth_grid = inputs.truth_grid
    except InputError:
        return None
    if truth_grid.sizes["time"] != grid.times.size:
        log.info("the true NEE grid is not on the model's time steps: the towers' comparison "
                 "leaves the truth out")
        return None
    return np.asarray(truth_grid.values[:, grid.lat_index, grid.lon_index], np.float64)
