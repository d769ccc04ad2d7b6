"""The models of a run: which are trained, and what each trains with."""

from __future__ import annotations

from fluxbridge.config import parse_config
from fluxbridge.run_models import (
    DUAL,
    PUBLISHED,
    RF,
    SITE_ONLY,
    XGB,
    model_names,
    network_terms,
)


def test_published_setting_changes_only_the_correction_and_the_estimator():
    cfg = parse_config({"constraint": {"lambda_regional": 2.5, "K": 16, "sampling": "uniform",
                                       "correction": "hierarchical",
                                       "estimator": "control_variate"}})
    towers = object()
    published, its_towers = network_terms(PUBLISHED, cfg, towers)  # type: ignore[arg-type]
    assert its_towers is None
    assert published.constraint.correction == "none"
    assert published.constraint.estimator == "fixed"
    assert (published.constraint.lambda_regional, published.constraint.K,
            published.constraint.sampling) == (2.5, 16, "uniform")
    left = published.model_dump(exclude={"constraint": {"correction", "estimator"}})
    assert left == cfg.model_dump(exclude={"constraint": {"correction", "estimator"}})
    dual, dual_towers = network_terms(DUAL, cfg, towers)  # type: ignore[arg-type]
    assert dual == cfg and dual_towers is towers


def test_published_setting_is_trained_only_with_the_regional_term_on():
    assert model_names(parse_config({}), None) == [SITE_ONLY, DUAL, RF, XGB, PUBLISHED]
    site_only = parse_config({"constraint": {"lambda_regional": 0.0}})
    assert PUBLISHED not in model_names(site_only, None)
    off = parse_config({"baselines": {"published": False, "random_forest": False}})
    assert model_names(off, None) == [SITE_ONLY, DUAL, XGB]
