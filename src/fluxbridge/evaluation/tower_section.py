"""What the tall towers' footprints add: four networks compared, in the regions and at the towers.

The four networks are trained once on every site: site-only (no constraint), footprints only
(the footprint term alone, λ = 0), regional only (the regional term alone, no towers) and both
(the run's dual model). Each is scored

* against the truth, where there is one (a twin world): regional monthly RMSE [Tg month-1] and
  mean |annual bias| [Tg yr-1] in the towers' footprint region, on the footprint cells and
  everywhere (:mod:`fluxbridge.evaluation.towers`);
* always, also on real data, by its fit to the towers themselves: the enhancement it implies at
  each receptor through the full footprint rows of H, ``H·f`` [ppm] (exact, every column, of
  the model's upscaled daily NEE ``f`` [gC m-2 d-1], positive to the atmosphere), minus the
  observed enhancement ``Δc_obs = CO2 − background − fossil − ocean`` [ppm], as the footprint
  term uses it (:mod:`fluxbridge.io.towers`). RMSE and mean of that mismatch [ppm]; a positive
  mean bias is a model that puts more CO2 into the towers' air than they saw.

Pure: tables and arrays in memory in, tables and a report section out.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from fluxbridge.evaluation.report import ReportSection
from fluxbridge.io.towers import TowerObservations
from fluxbridge.operators.footprint import FootprintOperator

TITLE = "Tall towers: what the footprints add"

MODEL_LABELS = {"site_only": "site-only", "footprint_only": "footprints only",
                "regional_only": "regional only", "dual": "both (dual)"}
"""Model name → its row label, in the section's order."""

DOMAINS = ("footprint region", "footprint cells", "everywhere")
"""Where the models are scored against the truth (:mod:`fluxbridge.evaluation.towers`)."""

TEXT = (
    "Four networks trained once on every site (not cross-validated, not withheld region by "
    "region): site-only; footprints only (the tower footprint term, no regional term); regional "
    "only (the inversions' regional term, no towers); both (the dual model). {truth}"
    "Fit to the towers: the modelled minus the observed CO2 enhancement at each receptor [ppm], "
    "the model's enhancement being H·f through the full footprint rows of H (exact) on its "
    "upscaled daily NEE f (positive to the atmosphere), the observed one CO2 minus background, "
    "fossil and ocean priors, as the footprint term uses it; RMSE and mean bias over the "
    "{n} receptors (a positive bias: more CO2 in the modelled air than observed). The towers "
    "that the footprint models were fitted to are the ones they are scored on: an in-sample fit.")

FLOOR_TEXT = (" The true NEE itself fits the towers to an RMSE of {rmse:.2f} ppm: the "
              "towers' noise, the least a model can reach.")

TRUTH_TEXT = (
    "Against the truth: regional monthly RMSE [TgC/month] and mean |annual bias| [TgC/yr], "
    "pooled over the region-months of the towers' footprint region ({regions}: regions with at "
    "least 10 % of the footprint weight on land), on the footprint cells (the fewest cells "
    "holding 80 % of it, summed as one region) and everywhere. ")


def observed_enhancement(towers: TowerObservations, operator: FootprintOperator) -> np.ndarray:
    """The observed enhancement Δc_obs [ppm] of each row of ``operator``.

    Parameters
    ----------
    towers
        Matched tower observations (``enhancement_ppm`` = CO2 − background − fossil − ocean).
    operator
        Footprint rows of H built from ``towers`` (receptors outside the field's days are not
        among its rows).

    Returns
    -------
    np.ndarray
        (n_obs,) [ppm], in the operator's row order.
    """
    rows = towers.rows_of(operator.obs_index["source"])
    return rows["enhancement_ppm"].to_numpy(dtype=np.float64)


def enhancement_fit(operator: FootprintOperator, observed: np.ndarray,
                    fields: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Each model's fit to the towers: modelled minus observed enhancement.

    Parameters
    ----------
    operator
        Footprint rows of H [ppm per (gC m-2 d-1)] on the fields' days and cells.
    observed
        (n_obs,) observed enhancement Δc_obs [ppm].
    fields
        Model name → daily NEE (n_time, n_cell) [gC m-2 d-1], positive to the atmosphere
        (NaN counts as zero).

    Returns
    -------
    pd.DataFrame
        ``model, towers_rmse_ppm, towers_mean_bias_ppm, n_receptors``: RMSE and mean of
        ``H·f − Δc_obs`` [ppm] over the receptors.
    """
    rows = []
    for name, field in fields.items():
        misfit = operator.exact(np.nan_to_num(np.asarray(field, dtype=np.float64))) - observed
        rows.append({"model": name, "towers_rmse_ppm": float(np.sqrt(np.mean(misfit**2))),
                     "towers_mean_bias_ppm": float(np.mean(misfit)),
                     "n_receptors": int(misfit.size)})
    return pd.DataFrame(rows, columns=["model", "towers_rmse_ppm", "towers_mean_bias_ppm",
                                       "n_receptors"])


def comparison_table(fit: pd.DataFrame, scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per model: its scores against the truth by domain (when given) and its fit to
    the towers.

    Parameters
    ----------
    fit
        :func:`enhancement_fit`.
    scores
        :func:`fluxbridge.evaluation.towers.tower_scores` rows (with the footprint cells'),
        or None (real data have no truth).

    Returns
    -------
    pd.DataFrame
        ``model`` (the row label of :data:`MODEL_LABELS`), then ``<domain> RMSE [TgC/month]``
        and ``<domain> |annual bias| [TgC/yr]`` for each of :data:`DOMAINS` with a truth, then
        ``towers RMSE [ppm]`` and ``towers mean bias [ppm]``; rows in the order of
        :data:`MODEL_LABELS`.
    """
    table = pd.DataFrame({"model": fit["model"].to_numpy()})
    if scores is not None:
        for domain in DOMAINS:
            at = scores[scores["domain"] == domain].set_index("model")
            table[f"{domain} RMSE [TgC/month]"] = table["model"].map(at["monthly_rmse_tgc"])
            table[f"{domain} |annual bias| [TgC/yr]"] = table["model"].map(
                at["mean_abs_annual_bias_tgc"])
    table["towers RMSE [ppm]"] = fit["towers_rmse_ppm"].to_numpy()
    table["towers mean bias [ppm]"] = fit["towers_mean_bias_ppm"].to_numpy()
    order = {name: k for k, name in enumerate(MODEL_LABELS)}
    table = table.sort_values("model", key=lambda s: s.map(order)).reset_index(drop=True)
    table["model"] = table["model"].map(lambda n: MODEL_LABELS.get(n, n))
    return table


def tower_section(table: pd.DataFrame, n_receptors: int, seen: list[str] | None = None,
                  truth_rmse_ppm: float | None = None) -> ReportSection:
    """The report's section "Tall towers: what the footprints add".

    Parameters
    ----------
    table
        :func:`comparison_table`.
    n_receptors
        Receptors the fit is over.
    seen
        The footprint region's names when the models were scored against a truth, else None.
    truth_rmse_ppm
        RMSE [ppm] of the true NEE's own fit to the towers (the noise a perfect model keeps),
        or None.
    """
    truth = "" if seen is None else TRUTH_TEXT.format(regions=", ".join(seen) or "none")
    floor = "" if truth_rmse_ppm is None else FLOOR_TEXT.format(rmse=truth_rmse_ppm)
    return ReportSection(TITLE, text=TEXT.format(truth=truth, n=n_receptors) + floor,
                         tables=[("Scores of the four networks" if seen is not None
                                  else "Fit of the four networks to the towers", table)])
