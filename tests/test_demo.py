"""The demo's configuration: the full experiment on a smaller world with fewer retrainings."""

from __future__ import annotations

from fluxbridge.config import parse_config
from fluxbridge.demo import DEMO_HELDOUT_REGIONS, demo_config
from fluxbridge.synthetic.config import DEFAULT_SITE_DENSITY, WorldConfig, load_world_config


def test_demo_world_is_the_standard_world_with_fewer_years(tmp_path):
    cfg = demo_config(tmp_path / "demo")
    world = load_world_config(cfg.world.config)
    standard = WorldConfig()
    assert world.n_years < standard.n_years
    assert world.site_years_max <= world.n_years
    changed = {k for k, v in world.model_dump().items() if v != getattr(standard, k)}
    assert changed == {"n_years", "site_years_max"}
    assert cfg.world.dir == (tmp_path / "demo" / "world").resolve()


def test_demo_keeps_the_full_experiments_models_and_withholds_towered_and_bare_regions(
        tmp_path):
    demo, full = demo_config(tmp_path), parse_config({})
    assert demo.network == full.network and demo.constraint == full.constraint
    assert demo.validation.leave_region_out and demo.constrained
    assert demo.validation.folds < full.validation.folds
    assert set(DEMO_HELDOUT_REGIONS) <= set(DEFAULT_SITE_DENSITY)
    density = [DEFAULT_SITE_DENSITY[r] for r in DEMO_HELDOUT_REGIONS]
    assert density == sorted(density, reverse=True)  # from most to fewest towers per area
    assert full.validation.leave_region_out_regions is None  # the full experiment: every one
