"""Configuration validation and command-line behaviour (errors, exit codes, help)."""

from __future__ import annotations

import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest
import yaml

from fluxbridge.cli import EXIT_BAD_INPUT, build_parser, main
from fluxbridge.config import ExperimentConfig, load_config, parse_config, write_template
from fluxbridge.errors import ConfigError


def test_template_is_valid_and_equals_the_defaults(tmp_path):
    path = write_template(tmp_path / "exp.yaml")
    cfg = load_config(path)
    defaults = parse_config({"name": "twin-world", "out_dir": "runs/twin-world",
                             "world": {}}, path)
    assert cfg == defaults
    assert cfg.out_dir == (tmp_path / "runs" / "twin-world").resolve()
    assert cfg.input_spec() == (tmp_path / "world" / "inputs.yaml", tmp_path / "world")


def test_template_is_short_and_lists_no_tuning(tmp_path):
    text = write_template(tmp_path / "exp.yaml").read_text()
    assert len(text.splitlines()) <= 60
    assert "tuning" not in yaml.safe_load(text)


def test_inputs_resolve_against_the_yaml_file(tmp_path):
    path = tmp_path / "sub" / "exp.yaml"
    path.parent.mkdir()
    cfg = parse_config({"inputs": {"sites": "data/FLX_*.csv", "regions": "/abs/r.nc",
                                   "meteorology": ["era5/a.nc", "era5/b.nc"]}}, path)
    spec, _ = cfg.input_spec()
    assert spec["sites"] == str(tmp_path / "sub" / "data" / "FLX_*.csv")
    assert spec["regions"] == "/abs/r.nc"
    assert spec["meteorology"] == [str(tmp_path / "sub" / "era5" / n) for n in ("a.nc", "b.nc")]
    file_cfg = parse_config({"inputs": "world/inputs.yaml"}, path)
    assert file_cfg.input_spec() == (tmp_path / "sub" / "world" / "inputs.yaml",
                                     tmp_path / "sub" / "world")


def test_no_inputs_is_a_config_error():
    with pytest.raises(ConfigError, match="inputs"):
        parse_config({}).input_spec()


def test_tuning_keys_are_validated():
    cfg = parse_config({"tuning": {"cache": {"refresh_every": 3}}})
    assert cfg.tuning.cache.refresh_every == 3
    assert cfg.tuning.offset.fit_K == 512  # untouched defaults stay
    assert parse_config({}).tuning.cache.refresh_every == 1
    with pytest.raises(ConfigError, match=r"tuning\.cache\.refresh_evry"):
        parse_config({"tuning": {"cache": {"refresh_evry": 3}}})
    with pytest.raises(ConfigError, match=r"tuning\.cache\.refresh_every"):
        parse_config({"tuning": {"cache": {"refresh_every": 0}}})  # at least every epoch


def test_training_key_ignores_what_does_not_train():
    a = parse_config({"name": "a", "upscaling": {"format": "zarr"}})
    b = parse_config({"name": "b"})
    assert a.training_key() == b.training_key()
    assert a.training_key() != b.with_lambda(0.5).training_key()
    assert a.training_key() != parse_config({"tuning": {"cache": {"linear": False}}}
                                            ).training_key()


def test_compare_tower_terms_is_a_checked_switch_that_does_not_train():
    assert parse_config({}).constraint.compare_tower_terms is True
    off = parse_config({"constraint": {"compare_tower_terms": False}})
    assert off.constraint.compare_tower_terms is False
    assert off.training_key() == parse_config({}).training_key()  # checkpoints still match
    with pytest.raises(ConfigError, match=r"constraint\.compare_tower_terms"):
        parse_config({"constraint": {"compare_tower_terms": "sometimes"}})
    with pytest.raises(ConfigError, match=r"constraint\.compare_tower_term\b"):
        parse_config({"constraint": {"compare_tower_term": False}})


def test_every_template_key_is_a_config_key(tmp_path):
    data = yaml.safe_load(write_template(tmp_path / "e.yaml").read_text())

    def walk(d, model):
        for key, value in d.items():
            assert key in model.model_fields, key
            sub = model.model_fields[key].annotation
            if isinstance(sub, types.UnionType):  # an optional section
                sub = next(a for a in typing.get_args(sub) if a is not type(None))
            if isinstance(value, dict):
                walk(value, sub)

    walk(data, ExperimentConfig)


@pytest.mark.parametrize(
    ("data", "key", "fragment"),
    [
        ({"network": {"width": 0}}, "network.width", "greater than or equal"),
        ({"constraint": {"estimator": "magic"}}, "constraint.estimator", "magic"),
        ({"features": ["ta", "co2_ppm"]}, "features", "co2_ppm"),
        ({"netwrok": {}}, "netwrok", "Extra inputs"),
        ({"constraint": {"lambda_regional": -1}}, "constraint.lambda_regional", "-1"),
        ({"features": ["ta", "vpd", "ta"]}, "features", "listed twice: ['ta']"),
        ({"network": {"lr": "inf"}}, "network.lr", "finite"),
        ({"tuning": {"offset": {"lr_factor": "nan"}}}, "tuning.offset.lr_factor", "finite"),
    ],
)
def test_config_errors_name_key_and_value(tmp_path, data, key, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and key in message and fragment in message


@pytest.mark.parametrize(("text", "key"), [
    ("network:\n  lr: .inf\n", "network.lr"),
    ("constraint:\n  lambda_regional: -.Inf\n", "constraint.lambda_regional"),
    ("network: {weight_decay: .NaN}\n", "network.weight_decay"),
])
def test_non_finite_numbers_are_refused_naming_the_key(tmp_path, text, key):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="non-finite number") as info:
        load_config(path)
    assert f"variable {key!r}" in str(info.value) and str(path) in str(info.value)


def test_a_key_given_twice_is_refused_naming_the_key_and_lines(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("name: a\nnetwork:\n  lr: 0.01\n  width: 8\n  lr: 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "variable 'lr'" in str(info.value) and "lines 3 and 5" in str(info.value)


def test_a_merge_key_may_be_overridden(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("network:\n  <<: {width: 8, depth: 2}\n  width: 16\n")
    assert load_config(path).network.width == 16


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_missing_config_file_is_a_one_line_error(tmp_path, capsys):
    code = main(["run", str(tmp_path / "absent.yaml")])
    err = capsys.readouterr().err.strip()
    assert code == EXIT_BAD_INPUT
    assert "\n" not in err and "absent.yaml" in err and "fluxbridge init" in err


def test_init_refuses_to_overwrite(tmp_path, capsys):
    target = tmp_path / "exp.yaml"
    assert main(["init", str(target)]) == 0
    before = target.read_text()
    assert main(["init", str(target)]) == EXIT_BAD_INPUT
    assert "--overwrite" in capsys.readouterr().err
    assert target.read_text() == before


def test_help_lists_every_command():
    text = build_parser().format_help()
    for command in ("synth", "inspect", "init", "run", "train", "upscale", "evaluate", "sitecv",
                    "demo"):
        assert command in text


def test_console_script_help_runs():
    out = subprocess.run([sys.executable, "-m", "fluxbridge.cli", "run", "--help"],
                         capture_output=True, text=True, check=True)
    assert "YAML experiment file" in out.stdout


def test_debug_flag_shows_the_traceback(tmp_path):
    with pytest.raises(ConfigError):
        main(["--debug", "run", str(Path(tmp_path) / "absent.yaml")])


def test_missing_input_is_a_one_line_error_before_any_work(tmp_path, capsys):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump({"out_dir": "run", "inputs": {
        "sites": "sites/FLX_*.csv", "site_table": "bif.csv", "meteorology": "era5.nc",
        "land_cover": "lc.nc", "inversions": "inv.nc", "regions": "regions.nc"}},
        sort_keys=False))
    code = main(["run", str(cfg)])
    err = capsys.readouterr().err.strip()
    assert code == EXIT_BAD_INPUT
    assert "\n" not in err and "inputs.sites" in err and "FLX_*.csv" in err
    assert not (tmp_path / "run").exists()
