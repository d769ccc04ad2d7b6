"""The upscaling workflow on a tiny 20-degree world with analytically known models: products,
ensembles, resume, formats and schedulers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxbridge.constants import G_PER_TG
from fluxbridge.errors import GridMismatchError, InputError
from fluxbridge.operators.operator import global_annual_totals, regional_totals
from fluxbridge.regions import builtin_regions
from fluxbridge.upscaling.workflow import MANIFEST, upscale

A, B = 0.3, 0.002
FEATURES = ["ta", "sw_in", "ndvi"]


class LinearModel:
    """Stand-in model: NEE = a * ta - b * sw_in * ndvi [g m-2 d-1] on land, NaN on water."""

    feature_names = FEATURES

    def __init__(self, a: float = A, b: float = B, name: str = "linear") -> None:
        self.a, self.b, self.name = a, b, name
        self.calls = 0

    def truth(self, ds: xr.Dataset) -> xr.DataArray:
        return (self.a * ds["ta"] - self.b * ds["sw_in"] * ds["ndvi"]).where(ds["land_cover"] > 0)

    def predict_arrays(self, X, igbp, device=None, *, region=None, dayofyear=None):
        self.calls += 1
        return self.a * X[:, 0] - self.b * X[:, 1] * X[:, 2]


class ConstantModel(LinearModel):
    """NEE = c everywhere a cell has land."""

    def __init__(self, c: float) -> None:
        super().__init__(name="constant")
        self.c = c

    def predict_arrays(self, X, igbp, device=None, *, region=None, dayofyear=None):
        self.calls += 1
        return np.full(X.shape[0], self.c, dtype=np.float32)


class FailingModel(LinearModel):
    """Raises after ``n_ok`` chunks, as a killed run would stop."""

    def __init__(self, n_ok: int) -> None:
        super().__init__()
        self.n_ok = n_ok

    def predict_arrays(self, X, igbp, device=None, *, region=None, dayofyear=None):
        if self.calls >= self.n_ok:
            raise RuntimeError("injected failure")
        return super().predict_arrays(X, igbp)


@pytest.fixture(scope="module")
def regions() -> xr.Dataset:
    return builtin_regions("transcom_like", 20.0)


@pytest.fixture(scope="module")
def predictors(regions: xr.Dataset) -> xr.Dataset:
    """Daily predictors from mid-January to early March (partial months at both ends)."""
    times = pd.date_range("2021-01-20", "2021-03-05", freq="D")
    shape = (times.size, regions.sizes["lat"], regions.sizes["lon"])
    rng = np.random.default_rng(42)
    units = {"ta": "degC", "sw_in": "W m-2", "ndvi": "1"}
    scale = {"ta": 10.0, "sw_in": 100.0, "ndvi": 0.3}
    ds = xr.Dataset(
        {v: (("time", "lat", "lon"), (scale[v] * rng.normal(size=shape)).astype("float32"),
             {"units": units[v], "long_name": v}) for v in FEATURES},
        coords={"time": times, "lat": regions["lat"], "lon": regions["lon"]},
    )
    cover = np.where(regions["land_fraction"].values > 0, 10, 0).astype(np.int16)
    ds["land_cover"] = (("lat", "lon"), cover, {"units": "1", "long_name": "IGBP code"})
    return ds


def _run(models, predictors, regions, out, **kw):
    kw.setdefault("scheduler", "synchronous")
    kw.setdefault("max_chunk_cells", 700)  # several latitude bands per month at 20 degrees
    kw.setdefault("progress", False)
    return upscale(models, predictors, regions, out, **kw)


@pytest.fixture(scope="module")
def single(predictors, regions, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    return _run({"linear": LinearModel()}, predictors, regions, out,
                provenance={"config": {"seed": 1}, "corrections": {"fire": -1}})["linear"]


def test_known_field_reproduced(single, predictors):
    truth = LinearModel().truth(predictors).transpose("time", "lat", "lon")
    with xr.open_dataset(single.grid) as ds:
        assert ds["nee"].dtype == np.float32
        np.testing.assert_allclose(ds["nee"].values, truth.values, rtol=1e-5, atol=1e-5)
        assert "nee_spread" not in ds
        assert ds["nee"].attrs["units"] == "g m-2 d-1"
        assert "positive to the atmosphere" in ds["nee"].attrs["long_name"]
        assert ds.attrs["Conventions"] == "CF-1.8"
        assert json.loads(ds.attrs["fluxbridge_config"]) == {"seed": 1}
        assert json.loads(ds.attrs["corrections"]) == {"fire": -1}
    with xr.open_dataset(single.grid_monthly) as ds:
        expected = truth.resample(time="MS").mean()
        np.testing.assert_allclose(ds["nee"].values, expected.values, rtol=1e-5, atol=1e-5)
        assert list(ds["time"].dt.day.values) == [1] * ds.sizes["time"]


def test_regional_and_global_totals_match_the_operator(single, regions):
    with xr.open_dataset(single.grid) as ds:
        nee = ds["nee"].load()
    expected = regional_totals(nee, regions)
    table = pd.read_csv(single.regional_csv)
    assert list(table.columns) == ["region", "time", "nee_tgc"]
    wide = table.pivot(index="region", columns="time", values="nee_tgc")
    for rid, name in zip(expected["region"].values, expected["region_name"].values, strict=True):
        np.testing.assert_allclose(wide.loc[name].values, expected.sel(region=rid).values,
                                   rtol=1e-6, atol=1e-9)
    glob = global_annual_totals(nee, regions["cell_area"], regions["land_fraction"])
    gtable = pd.read_csv(single.global_csv)
    np.testing.assert_allclose(gtable["nee_pgc"].values, glob.values, rtol=1e-6)
    with xr.open_dataset(single.regional_nc) as ds:
        np.testing.assert_allclose(ds["nee_tgc"].values, expected.values, rtol=1e-6, atol=1e-9)
        assert ds["nee_tgc"].attrs["units"] == "Tg month-1"


def test_constant_flux_integrates_to_flux_times_area_times_days(predictors, regions, tmp_path):
    c = -1.5
    res = _run({"c": ConstantModel(c)}, predictors, regions, tmp_path)["c"]
    table = pd.read_csv(res.regional_csv)
    land_area = (regions["cell_area"] * regions["land_fraction"]).values
    days = pd.DatetimeIndex(predictors["time"].values).to_period("M").value_counts().sort_index()
    ids = regions["region"].attrs["flag_values"]
    names = regions["region"].attrs["flag_meanings"].split()
    for rid, name in zip(ids, names, strict=True):
        area = land_area[regions["region"].values == rid].sum()  # m2 of land in the region
        got = table[table["region"] == name.replace("_", " ")]["nee_tgc"].values
        np.testing.assert_allclose(got, c * area * days.values / G_PER_TG, rtol=1e-9)


def test_ensemble_mean_and_spread(predictors, regions, tmp_path):
    members = [LinearModel(a=0.1), LinearModel(a=0.5)]
    res = _run({"ens": members}, predictors, regions, tmp_path)["ens"]
    assert res.members == 2
    ta = predictors["ta"].where(predictors["land_cover"] > 0).transpose("time", "lat", "lon")
    with xr.open_dataset(res.grid) as ds:
        np.testing.assert_allclose(ds["nee"].values,
                                   LinearModel(a=0.3).truth(predictors).values, atol=1e-4)
        # two members differing by 0.4 * ta: sample standard deviation 0.4 |ta| / sqrt(2)
        np.testing.assert_allclose(ds["nee_spread"].values, 0.4 * np.abs(ta.values) / np.sqrt(2),
                                   rtol=1e-4, atol=1e-4)
    table = pd.read_csv(res.regional_csv)
    assert {"nee_tgc", "nee_tgc_spread"} <= set(table.columns)
    with xr.open_dataset(res.regional_nc) as ds:
        member = ds["nee_tgc_member"].values
        np.testing.assert_allclose(ds["nee_tgc_spread"].values, member.std(axis=0, ddof=1))
        np.testing.assert_allclose(ds["nee_tgc"].values, member.mean(axis=0))
    assert "nee_pgc_spread" in pd.read_csv(res.global_csv)


def test_cf_compliance_no_errors(single, tmp_path):
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    CheckSuite.load_all_available_checkers()
    for path in (single.grid, single.grid_monthly):
        report = tmp_path / f"{path.stem}.json"
        ComplianceChecker.run_checker(str(path), ["cf:1.8"], 0, "normal",
                                      output_filename=str(report), output_format="json")
        result = next(iter(json.loads(report.read_text()).values()))
        failed = [p["name"] for level in ("high_priorities", "medium_priorities")
                  for p in result[level] if p["value"][0] < p["value"][1]]
        assert failed == [], f"{path.name}: {failed}"


def test_resume_after_failure_gives_identical_products(single, predictors, regions, tmp_path):
    n_chunks = single.chunks
    with pytest.raises(RuntimeError, match="injected"):
        _run({"linear": FailingModel(n_ok=3)}, predictors, regions, tmp_path)
    out = tmp_path / "linear"
    assert not (out / "nee.nc").exists() and not (out / MANIFEST).exists()
    assert len(list((out / ".chunks").glob("chunk_*.npz"))) == 3

    model = LinearModel()
    res = _run({"linear": model}, predictors, regions, tmp_path)["linear"]
    assert model.calls == n_chunks - 3
    with xr.open_dataset(res.grid) as a, xr.open_dataset(single.grid) as b:
        np.testing.assert_array_equal(a["nee"].values, b["nee"].values)
    pd.testing.assert_frame_equal(pd.read_csv(res.regional_csv), pd.read_csv(single.regional_csv))
    assert not (out / ".chunks").exists()


def test_complete_products_refused_unless_overwrite(single, predictors, regions):
    out_dir = single.grid.parent.parent
    with pytest.raises(InputError, match="overwrite"):
        _run({"linear": LinearModel()}, predictors, regions, out_dir)
    model = LinearModel()
    _run({"linear": model}, predictors, regions, out_dir, overwrite=True,
         provenance={"config": {"seed": 1}, "corrections": {"fire": -1}})
    assert model.calls == single.chunks


def test_resume_keeps_complete_products_of_the_same_models_only(predictors, regions,
                                                                tmp_path):
    first = _run({"linear": LinearModel()}, predictors, regions, tmp_path)["linear"]
    stamp = first.grid.stat().st_mtime_ns
    again = LinearModel()
    kept = _run({"linear": again}, predictors, regions, tmp_path, resume=True)["linear"]
    assert again.calls == 0 and kept.grid == first.grid
    assert kept.grid.stat().st_mtime_ns == stamp
    other = ConstantModel(2.0)
    replaced = _run({"linear": other}, predictors, regions, tmp_path, resume=True)["linear"]
    assert other.calls == replaced.chunks
    with xr.open_dataset(replaced.grid) as ds:
        values = ds["nee"].values
    np.testing.assert_allclose(values[np.isfinite(values)], 2.0)


def test_lazy_netcdf_input_zarr_output_and_threads(single, predictors, regions, tmp_path):
    files = []
    for i, (_, part) in enumerate(predictors.groupby("time.month")):
        files.append(tmp_path / f"pred_{i}.nc")
        part.to_netcdf(files[-1])
    res = _run({"linear": LinearModel()}, files, regions, tmp_path / "out", fmt="zarr",
               scheduler="threads", n_workers=2)["linear"]
    assert res.grid.suffix == ".zarr"
    with xr.open_zarr(res.grid) as a, xr.open_dataset(single.grid) as b:
        np.testing.assert_array_equal(a["nee"].values, b["nee"].values)
        assert str(files[0]) in a.attrs["input_files"]


def test_distributed_scheduler_address(single, predictors, regions, tmp_path):
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:
        res = _run({"linear": LinearModel()}, predictors.chunk({"time": 10}), regions, tmp_path,
                   scheduler=cluster.scheduler_address)["linear"]
    with xr.open_dataset(res.grid) as a, xr.open_dataset(single.grid) as b:
        np.testing.assert_array_equal(a["nee"].values, b["nee"].values)


def test_bad_inputs(predictors, regions, tmp_path):
    with pytest.raises(GridMismatchError):
        _run({"m": LinearModel()}, predictors.isel(lon=slice(1, None)),
             regions.isel(lon=slice(None, -1)), tmp_path)
    with pytest.raises(InputError, match="predict_arrays"):
        _run({"m": object()}, predictors, regions, tmp_path)
    with pytest.raises(InputError, match="not found"):
        _run({"m": LinearModel()}, tmp_path / "missing.nc", regions, tmp_path)
    with pytest.raises(InputError, match="increasing"):
        _run({"m": LinearModel()}, predictors.isel(time=slice(None, None, -1)), regions, tmp_path)


def test_compliance_checker_command_line(single):
    exe = Path(sys.executable).with_name("compliance-checker")
    if not exe.exists():
        pytest.skip(f"compliance-checker script not found beside {sys.executable}")
    run = subprocess.run([str(exe), "--test=cf:1.8", str(single.grid)], capture_output=True,
                         text=True, check=False, timeout=120)
    assert run.returncode == 0, run.stdout


def test_real_fitted_model_saved_and_loaded(predictors, regions, tmp_path):
    torch = pytest.importorskip("torch")
    from fluxbridge.features import FEATURES, Normaliser
    from fluxbridge.models.artifact import FittedModel, load_model
    from fluxbridge.models.network import NEENet

    torch.manual_seed(0)
    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    full = predictors.copy()
    shape = predictors["ta"].shape
    for name in FEATURES:
        if name not in full and name != "sw_in_pot":
            full[name] = (("time", "lat", "lon"), rng.normal(size=shape).astype("float32"),
                          {"units": "1", "long_name": name})
    n = len(FEATURES)
    model = FittedModel(kind="nn", feature_names=list(FEATURES),
                        normaliser=Normaliser(list(FEATURES), np.zeros(n), np.ones(n)),
                        estimator=NEENet(n, width=8, depth=2), name="nn")
    loaded = load_model(model.save(tmp_path / "nn.pt"))
    res = _run({"nn": [loaded]}, full, regions, tmp_path / "out")["nn"]
    expected = model.predict_dataset(full.load())
    with xr.open_dataset(res.grid) as ds:
        np.testing.assert_allclose(ds["nee"].values, expected.values, rtol=1e-5, atol=1e-6)
        assert np.isnan(ds["nee"].values[:, predictors["land_cover"].values == 0]).all()


def test_single_model_chunk_files_hold_no_spread(predictors, regions, tmp_path):
    with pytest.raises(RuntimeError, match="injected"):
        _run({"linear": FailingModel(n_ok=1)}, predictors, regions, tmp_path)
    (chunk,) = (tmp_path / "linear" / ".chunks").glob("chunk_*.npz")
    with np.load(chunk) as f:
        assert set(f.files) == {"nee", "nee_monthly", "regional_tgc", "global_tgc"}


def test_monthly_step_products_are_monthly_means(regions, tmp_path):
    """A climatological year of monthly predictors: the products say they are monthly means,
    and a constant flux integrates to flux x area x the days of each month."""
    times = pd.date_range("2001-01-01", periods=12, freq="MS")
    shape = (times.size, regions.sizes["lat"], regions.sizes["lon"])
    monthly = xr.Dataset(
        {v: (("time", "lat", "lon"), np.ones(shape, dtype="float32"), {"units": "1"})
         for v in FEATURES},
        coords={"time": times, "lat": regions["lat"], "lon": regions["lon"]})
    monthly["land_cover"] = (("lat", "lon"), np.where(regions["land_fraction"].values > 0, 10,
                                                      0).astype(np.int16), {"units": "1"})
    res = _run({"c": ConstantModel(-2.0)}, monthly, regions, tmp_path)["c"]
    with xr.open_dataset(res.grid) as ds:
        assert ds.attrs["frequency"] == "month"
        ends = pd.DatetimeIndex(ds["time_bnds"].values[:, 1])
        assert list(ends.month) == [*range(2, 13), 1] and list(ends.day) == [1] * 12
    land = float((regions["cell_area"] * regions["land_fraction"]).sum())
    table = pd.read_csv(res.regional_csv).groupby("time")["nee_tgc"].sum()
    land_in_regions = float((regions["cell_area"] * regions["land_fraction"]).where(
        regions["region"] > 0).sum())
    np.testing.assert_allclose(table.values, -2.0 * land_in_regions * times.days_in_month
                               / G_PER_TG, rtol=1e-9)
    glob = pd.read_csv(res.global_csv)["nee_pgc"].values
    np.testing.assert_allclose(glob, -2.0 * land * 365 / 1e15, rtol=1e-9)
