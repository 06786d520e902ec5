"""The README, .env.example and docker-compose.yml agree with the code."""

import re
import tomllib
from pathlib import Path

import yaml

from shared.remote import commands
from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {name.upper() for name in Settings.model_fields}


def test_every_setting_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", readme, re.MULTILINE))
    assert documented >= SETTINGS, SETTINGS - documented


def test_every_exit_code_of_the_command_line_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    documented = {int(code) for code in re.findall(r"^\| (\d) \|", readme, re.M)}
    codes = set(commands.EXIT_CODES.values()) | {
        commands.RUN_NOT_SUCCEEDED,
        commands.STILL_RUNNING,
        commands.NOT_CONFIRMED,
    }
    assert documented >= codes | {0}, codes - documented


def test_env_example_names_only_real_settings():
    text = (ROOT / ".env.example").read_text()
    names = set(re.findall(r"^#? ?([A-Z_]+)=", text, re.MULTILINE))
    assert names and names <= SETTINGS, names - SETTINGS


def test_compose_runs_real_commands_with_real_settings():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    commands = {"api", "worker", "dev", "tick", "db"}
    for name in ("migrate", "api", "worker"):
        service = compose["services"][name]
        assert service["command"][0] == "pingpay-scheduler"
        assert service["command"][1] in commands
        assert set(service["environment"]) <= SETTINGS


def test_the_console_script_points_at_the_cli():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["pingpay-scheduler"] == "shared.cli:main"
