"""Configuration validation and command-line behaviour (errors, exit codes, help)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fluxbridge.cli import EXIT_BAD_INPUT, build_parser, main
from fluxbridge.config import ExperimentConfig, load_config, parse_config, write_template
from fluxbridge.errors import ConfigError


def test_template_is_valid_and_equals_the_defaults(tmp_path):
    path = write_template(tmp_path / "exp.yaml")
    cfg = load_config(path)
    defaults = parse_config({"name": "twin-world", "out_dir": "runs/twin-world"}, path)
    assert cfg == defaults
    assert cfg.out_dir == (tmp_path / "runs" / "twin-world").resolve()
    assert cfg.world.manifest == cfg.out_dir / "world" / "manifest.json"


def test_every_template_key_is_a_config_key(tmp_path):
    data = yaml.safe_load(write_template(tmp_path / "e.yaml").read_text())

    def walk(d, model):
        for key, value in d.items():
            assert key in model.model_fields, key
            sub = model.model_fields[key].annotation
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
    ],
)
def test_config_errors_name_key_and_value(tmp_path, data, key, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and key in message and fragment in message


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
