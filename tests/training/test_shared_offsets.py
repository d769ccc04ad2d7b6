"""The hierarchical correction: regions' offsets shrunk toward a shared mean that also corrects
regions without targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from method_world import model_targets

from fluxbridge.training import Trainer
from fluxbridge.training.hierarchy import (
    random_effects_mean,
    region_blocks,
    region_hemispheres,
    share_offsets,
    transfer_weight,
)


def test_random_effects_mean_known_answers():
    # identical estimates: no between-group variance, the common value
    mean, tau2 = random_effects_mean(np.full(5, 0.3), np.array([0.1, 1, 2, 3, 4.0]))
    assert mean == pytest.approx(0.3) and tau2 == 0.0
    # equal variances: the plain mean whatever τ²
    values = np.array([-1.0, 0.0, 2.0, 3.0])
    mean, tau2 = random_effects_mean(values, np.full(4, 0.01))
    assert mean == pytest.approx(1.0) and tau2 > 1.0
    # DerSimonian-Laird by hand: w = 1/v, Q, τ² = (Q - (n-1)) / (Σw - Σw²/Σw)
    v = np.array([0.01, 0.04, 0.09])
    y = np.array([1.0, 0.0, -1.0])
    w = 1 / v
    fixed = (w * y).sum() / w.sum()
    q = (w * (y - fixed) ** 2).sum()
    tau2_hand = (q - 2) / (w.sum() - (w**2).sum() / w.sum())
    mean, tau2 = random_effects_mean(y, v)
    assert tau2 == pytest.approx(tau2_hand)
    assert mean == pytest.approx(((y / (v + tau2_hand)).sum()) / (1 / (v + tau2_hand)).sum())


def test_share_offsets_fills_unconstrained_regions_with_the_mean_in_their_hemisphere():
    coef = np.array([[0.2, 0.1], [0.4, -0.1], [9.0, 9.0], [0.3, 0.0]])
    variance = np.full_like(coef, 1e-8)
    constrained = np.array([True, True, False, False])
    hemisphere = np.array([1.0, -1.0, 1.0, -1.0])
    shared, info = share_offsets(coef, variance, constrained, hemisphere)
    # the seasonal coefficient of the southern region is compared flipped: 0.1 and 0.1
    assert info["mean"] == pytest.approx([0.3, 0.1])
    np.testing.assert_allclose(shared[:2], coef[:2], atol=1e-6)  # precise: hardly shrunk
    np.testing.assert_allclose(shared[2], [0.3, 0.1])
    np.testing.assert_allclose(shared[3], [0.3, -0.1])  # the mean's season, southern phase


def test_share_offsets_shrinks_imprecise_regions_toward_the_mean():
    coef = np.array([[0.0], [1.0], [2.0], [10.0]])
    variance = np.array([[0.01], [0.01], [0.01], [100.0]])  # the last one barely known
    shared, _ = share_offsets(coef, variance, np.ones(4, bool), np.ones(4))
    assert abs(shared[3, 0] - 1.0) < 1.0 < abs(coef[3, 0] - 1.0)
    np.testing.assert_allclose(shared[:3, 0], coef[:3, 0], atol=0.05)


def test_region_hemispheres_follow_latitude(world):
    hemi = region_hemispheres(world.regions, int(world.grid.region.max()))
    ids = world.regions["region"].transpose("lat", "lon").values
    lat = np.broadcast_to(world.regions["lat"].values[:, None], ids.shape)
    for r in np.unique(ids[ids > 0]):
        assert hemi[r] == (1.0 if lat[ids == r].mean() >= 0 else -1.0) or \
            abs(lat[ids == r].mean()) < 5  # a region astride the equator: either
    assert hemi[0] == 1.0


@pytest.mark.parametrize("transfer", ["mean", "tested"])
def test_a_bias_common_to_all_regions_transfers_to_a_withheld_region(world, sites, configure,
                                                                    make_trainer, transfer):
    """Targets = network + one offset shared by every region + small regional departures, one
    region's targets withheld: the hierarchical fit gives the withheld region the shared
    offset (the others' mean predicts each of them: all of it, tested or not); the per-region
    correction leaves it uncorrected."""
    fitted = {}
    rng = np.random.default_rng(3)
    for correction in ("hierarchical", "region"):
        cfg = configure(constraint={"lambda_regional": 1.0, "correction": correction,
                                    "estimator": "exact"},
                        tuning={"offset": {"harmonics": 1, "fit_K": 64, "transfer": transfer}})
        trainer = make_trainer(cfg)
        weight = trainer.model.offset.weight
        n_regions = weight.shape[0] - 1
        common = torch.tensor([0.4, 0.0, 0.0], dtype=weight.dtype)
        known = common + torch.as_tensor(rng.normal(0, 0.02, (n_regions, 3)), dtype=weight.dtype)
        with torch.no_grad():
            weight[1:] = known
        keep_out = int(world.grid.region[0])  # a region whose targets are withheld
        targets = model_targets(trainer, keep_out)
        trainer = Trainer(world.samples, cfg, train_sites=sites, grid=world.grid,
                          targets=targets, regions=world.regions)
        with torch.no_grad():
            trainer.model.offset.weight.zero_()
        trainer.regional.fit_offsets()
        fitted[correction] = trainer.model.offset.weight[keep_out].detach().numpy()
    assert fitted["hierarchical"][0] == pytest.approx(0.4, rel=0.1)  # the network's units
    assert fitted["region"][0] == 0.0


def test_withheld_corrections_recover_a_common_offset_from_the_other_regions():
    """Residuals made by one offset shared by all regions (seasonal phase flipped in the
    south): each region's correction fitted without it is that offset's totals there."""
    from fluxbridge.studies.transfer import withheld_corrections

    rng = np.random.default_rng(0)
    n_regions, n_basis, months = 4, 3, 24
    obs_region = np.repeat(np.arange(1, n_regions + 1), months)
    design = np.zeros((obs_region.size, n_regions * n_basis))
    for r in range(1, n_regions + 1):
        rows = obs_region == r
        design[rows, (r - 1) * n_basis:r * n_basis] = rng.uniform(1, 3, (months, n_basis))
    hemisphere = np.array([1.0, 1.0, -1.0, 1.0, -1.0])
    common = np.array([0.5, 0.2, -0.1])
    per_region = np.stack([common * np.r_[1.0, hemisphere[r], hemisphere[r]]
                           for r in range(1, n_regions + 1)])
    residual = np.einsum("ij,ij->i", design.reshape(-1, n_regions, n_basis)[
        np.arange(obs_region.size), obs_region - 1], per_region[obs_region - 1])
    out = withheld_corrections(residual, np.ones(residual.size), obs_region, design, hemisphere)
    np.testing.assert_allclose(out, residual, rtol=1e-8, atol=1e-10)
    residual[obs_region == 2] = np.nan  # a region without targets still gets the correction
    out = withheld_corrections(residual, np.ones(residual.size), obs_region, design, hemisphere)
    np.testing.assert_allclose(out[obs_region == 2], (design[:, 3:6] @ per_region[1])[
        obs_region == 2], rtol=1e-8)
    tested = withheld_corrections(residual, np.ones(residual.size), obs_region, design,
                                  hemisphere, tested=True)
    np.testing.assert_allclose(tested, out, rtol=1e-8)  # the others' mean predicts each: all


def test_tested_transfer_gives_nothing_where_regions_disagree_in_sign():
    """Regions' offsets +c, −c, +c, −c: left out in turn, each is predicted with the wrong sign
    by the others' mean, so the tested correction of every withheld region is zero; the whole
    mean is not."""
    from fluxbridge.studies.transfer import withheld_corrections

    n_regions, months = 4, 12
    obs_region = np.repeat(np.arange(1, n_regions + 1), months)
    design = np.zeros((obs_region.size, n_regions))
    for r in range(1, n_regions + 1):
        design[obs_region == r, r - 1] = 2.0
    residual = design @ np.array([0.5, -0.5, 0.5, -0.5])
    args = (residual, np.ones(residual.size), obs_region, design, np.ones(n_regions + 1))
    assert np.abs(withheld_corrections(*args)).min() > 0.1
    np.testing.assert_array_equal(withheld_corrections(*args, tested=True), 0.0)


def test_with_lambda_zero_the_correction_changes_nothing(world, sites, configure, fit):
    """A site-only model (λ = 0) has no grid correction, whichever form is configured: the
    same weights."""
    models = [fit(sites, configure(constraint={"lambda_regional": 0.0, "correction": form}))
              for form in ("hierarchical", "none")]
    grid = [m.predict_arrays(world.grid.values[:3].reshape(-1, world.grid.values.shape[2]),
                             np.tile(world.grid.igbp_code, 3),
                             region=np.tile(world.grid.region, 3),
                             dayofyear=np.repeat([1, 100, 200], world.grid.n_cell))
            for m in models]
    assert not models[0].has_grid_offset
    np.testing.assert_array_equal(grid[0], grid[1])


def _blocks(n: int, n_basis: int) -> list[np.ndarray | None]:
    """Every region's totals are its coefficients themselves (one target per coefficient)."""
    return [np.eye(n_basis) for _ in range(n)]


def test_transfer_weight_is_one_when_every_region_has_the_same_offset():
    coef = np.tile([0.3, -0.1], (5, 1))
    variance = np.full_like(coef, 1e-4)
    alpha = transfer_weight(coef, variance, np.ones(5, bool), np.ones(5), _blocks(5, 2))
    assert alpha == pytest.approx(1.0)


def test_transfer_weight_is_zero_when_the_others_predict_the_wrong_sign():
    coef = np.array([[1.0], [-1.0], [1.0], [-1.0]])  # each left out, the others lean the other way
    alpha = transfer_weight(coef, np.full_like(coef, 1e-4), np.ones(4, bool), np.ones(4),
                            _blocks(4, 1))
    assert alpha == 0.0


def test_transfer_weight_known_answer_and_its_use():
    # equal, tiny variances and very different regions: each left-out mean is the plain mean
    c = np.array([1.0, 2.0, 4.0, 8.0, -3.0])
    coef, variance = c[:, None], np.full((5, 1), 1e-6)
    m = np.array([np.delete(c, s).mean() for s in range(5)])
    hand = float(np.clip((c * m).sum() / (m * m).sum(), 0, 1))
    alpha = transfer_weight(coef, variance, np.ones(5, bool), np.ones(5), _blocks(5, 1))
    assert alpha == pytest.approx(hand, rel=1e-6) and 0 < alpha < 1
    # the region without targets gets α times the mean; constrained regions keep theirs
    constrained = np.array([True] * 5 + [False])
    shared, info = share_offsets(np.vstack([coef, [[50.0]]]), np.vstack([variance, [[np.inf]]]),
                                 constrained, np.ones(6), alpha)
    assert shared[5, 0] == pytest.approx(alpha * info["mean"][0])
    np.testing.assert_allclose(shared[:5, 0], c, atol=1e-3)


def test_transfer_weight_needs_three_regions_and_blocks_follow_targets():
    coef = np.array([[1.0], [-1.0]])
    assert transfer_weight(coef, np.ones((2, 1)), np.ones(2, bool), np.ones(2),
                           _blocks(2, 1)) == 1.0
    design = np.arange(12.0).reshape(4, 3)  # 4 targets, 3 regions of one coefficient
    blocks = region_blocks(design, np.array([True, True, False, True]),
                           np.array([1, 3, 3, 1]), 3)
    np.testing.assert_array_equal(blocks[0], design[[0, 3], 0:1])
    assert blocks[1] is None
    np.testing.assert_array_equal(blocks[2], design[[1], 2:3])
