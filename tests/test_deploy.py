"""The deployment files agree with the code.

No function platform or Docker engine runs here, so each file is checked as
far as this machine allows: the SAM template by cfn-lint (which knows the
schemas of SAM's resources) and against the handlers and settings; the
Dockerfile by
BuildKit's own parser; docker-compose.yml, the Railway configs and the
Procfile against the commands, settings and routes of the service, and the
API's health check by running it against a real API.
"""

import hashlib
import re
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import click
import dockerfile
import pytest
import yaml
from cfnlint.api import lint_file
from cfnlint.decode.decode import decode_str
from sqlalchemy.engine import make_url

from shared.cli import main
from shared.settings import Settings
from shared.web.app import create_app
from shared.web.schemas import JobFields
from tests.helpers import process_env, wait_for

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
SETTINGS = {name.upper() for name in Settings.model_fields}
#: An API_KEYS entry for running the API as deployed: the SHA-256 of a key.
TEST_KEY_ENTRY = "sha256:" + hashlib.sha256(b"deploy-test-key-0123456789").hexdigest()


def is_command(words: list[str]) -> bool:
    """Whether ``words`` is a whole ``pingpay-scheduler`` command."""
    if words[0] != "pingpay-scheduler":
        return False
    command: click.Command = main
    for word in words[1:]:
        if not isinstance(command, click.Group):
            return False
        command = command.get_command(click.Context(main), word)
        if command is None:
            return False
    return not isinstance(command, click.Group)


def served_paths() -> set[str]:
    paths = create_app(local_only=True).openapi()["paths"]
    return {path for path, operations in paths.items() if "get" in operations}


# The SAM template.


@pytest.fixture(scope="module")
def template() -> dict:
    data, problems = decode_str((INFRA / "template.yaml").read_text())
    assert not problems, problems
    return data


def functions(template: dict) -> dict[str, dict]:
    """Each function's properties, by the name of the module of its handler."""
    found = {}
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            properties = resource["Properties"]
            found[properties["Handler"].split(".")[1]] = properties
    return found


def test_the_template_passes_cfn_lint():
    problems = lint_file(INFRA / "template.yaml")
    assert not problems, "\n".join(str(problem) for problem in problems)


def test_the_template_declares_every_function_handler(template):
    handlers = {
        name: properties["Handler"] for name, properties in functions(template).items()
    }
    on_disk = {path.parent.name for path in ROOT.glob("functions/*/handler.py")}

    assert set(handlers) == on_disk == {"api", "tick", "execute", "migrate"}
    for name, handler in handlers.items():
        assert handler == f"functions.{name}.handler.handler"


def test_every_handler_imports_in_a_fresh_process(template, tmp_path):
    modules = [p["Handler"].rsplit(".", 1)[0] for p in functions(template).values()]
    check = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    assert callable(importlib.import_module(name).handler), name\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", check, *modules],
        env=process_env(DATA_DIR=str(tmp_path), API_KEYS=TEST_KEY_ENTRY),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_the_template_passes_only_settings_the_service_reads(template):
    passed = set(template["Globals"]["Function"]["Environment"]["Variables"])
    for properties in functions(template).values():
        passed |= set(properties.get("Environment", {}).get("Variables", {}))
    assert passed and passed <= SETTINGS, passed - SETTINGS


def test_secrets_come_from_parameters_that_never_echo(template):
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    for setting in ("POSTGRES_URL", "REDIS_URL"):
        parameter = template["Parameters"][variables[setting]["Ref"]]
        assert parameter["NoEcho"] is True
        assert "Default" not in parameter


def test_tick_and_execute_run_every_minute_and_the_api_behind_an_http_api(template):
    events = {
        name: [event["Type"] for event in properties.get("Events", {}).values()]
        for name, properties in functions(template).items()
    }
    assert events == {
        "api": ["HttpApi"],
        "tick": ["Schedule"],
        "execute": ["Schedule"],
        "migrate": [],
    }
    for name in ("tick", "execute"):
        [event] = functions(template)[name]["Events"].values()
        assert event["Properties"]["Schedule"] == "rate(1 minute)"


def test_execute_keeps_starting_default_jobs_until_the_next_invocation(template):
    parameters = template["Parameters"]
    margin = parameters["ExecuteMarginSeconds"]["Default"]
    window = parameters["ExecuteTimeout"]["Default"] - margin
    default_timeout = JobFields.model_fields["timeout_seconds"].default

    # Invoked every minute, an invocation must still start an attempt of the
    # default length 60 s after it began, when the next one takes over.
    assert window - default_timeout >= 60
    assert margin == Settings.model_fields["execute_margin_seconds"].default
    assert parameters["ExecuteMarginSeconds"]["MinValue"] == 1


def test_the_build_script_fills_the_folder_the_template_deploys(template):
    code = INFRA / template["Globals"]["Function"]["CodeUri"]
    script = (INFRA / "build-lambda.sh").read_text()
    target = re.search(r"--target (\S+)", script).group(1)
    runtime = template["Globals"]["Function"]["Runtime"]

    assert code.resolve() == (ROOT / target).resolve()
    assert f"--python-version {runtime.removeprefix('python')}" in script


# The image.


@pytest.fixture(scope="module")
def instructions() -> tuple:
    return dockerfile.parse_file(str(INFRA / "Dockerfile"))


def final_stage(instructions: tuple) -> list:
    starts = [i for i, step in enumerate(instructions) if step.cmd == "FROM"]
    return list(instructions[starts[-1] :])


def test_the_image_runs_as_a_user_that_is_not_root(instructions):
    users = [step.value[0] for step in final_stage(instructions) if step.cmd == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_the_image_keeps_only_the_installed_service(instructions):
    final = final_stage(instructions)
    copies = [step for step in final if step.cmd == "COPY"]

    assert final[0].value[0].endswith("-slim")
    assert copies and all("--from=build" in step.flags for step in copies)


def test_the_image_copies_what_the_package_needs_and_nothing_ignored(instructions):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    sources = {
        source
        for step in instructions
        if step.cmd == "COPY" and not step.flags
        for source in step.value[:-1]
    }
    kept = set((ROOT / ".dockerignore").read_text().split())

    assert {"pyproject.toml", project["project"]["readme"]} <= sources
    assert {name.rstrip("*") for name in packages} <= sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert f"!{source}" in kept or f"!{source}/" in kept, source


def test_the_image_starts_the_api_on_its_default_port(instructions):
    [command] = [step for step in instructions if step.cmd == "CMD"]
    [exposed] = [step for step in instructions if step.cmd == "EXPOSE"]
    assert command.json and is_command(list(command.value))
    assert exposed.value == (str(Settings.model_fields["port"].default),)


# docker-compose.yml.


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def interpolated(values: dict[str, str]) -> dict[str, str]:
    """Values as compose fills them: defaults for ``${NAME:-default}``, and
    a test key for ``${API_KEYS:?...}``, the one variable compose requires."""
    default = re.compile(r"\$\{[A-Z_]+:-([^}]*)\}")
    required_key = re.compile(r"\$\{API_KEYS:\?[^}]*\}")
    return {
        key: required_key.sub(TEST_KEY_ENTRY, default.sub(r"\1", str(value)))
        for key, value in values.items()
    }


def test_compose_runs_the_whole_stack_from_one_image(compose):
    services = compose["services"]
    app = ("migrate", "api", "worker")

    assert set(services) == {"postgres", "redis", *app}
    assert {services[name]["image"] for name in app} == {"pingpay-scheduler"}
    for name in app:
        assert (ROOT / services[name]["build"]["dockerfile"]).exists()
        assert is_command(services[name]["command"]), name
        assert set(services[name]["environment"]) <= SETTINGS, name


def test_compose_starts_each_service_once_what_it_needs_is_up(compose):
    services = compose["services"]
    migrated = {"condition": "service_completed_successfully"}
    healthy = {"condition": "service_healthy"}

    assert services["migrate"]["depends_on"] == {"postgres": healthy}
    for name in ("api", "worker"):
        assert services[name]["depends_on"] == {"migrate": migrated, "redis": healthy}
    for name in ("postgres", "redis", "api"):
        assert services[name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")


def test_compose_points_the_service_at_its_own_servers(compose):
    services = compose["services"]
    database = interpolated(services["postgres"]["environment"])
    for name in ("migrate", "api", "worker"):
        env = interpolated(services[name]["environment"])
        settings = Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})
        url = make_url(settings.database_url)

        assert (url.host, url.port) == ("postgres", 5432)
        assert url.username == database["POSTGRES_USER"]
        assert url.password == database["POSTGRES_PASSWORD"]
        assert url.database == database["POSTGRES_DB"]
        assert settings.redis_url == "redis://redis:6379/0"


def test_compose_health_check_passes_against_a_running_api(compose, tmp_path):
    api = compose["services"]["api"]
    port = int(api["environment"]["PORT"])
    _, *check = api["healthcheck"]["test"]
    url = urlsplit(re.search(r"http://[^'\"]+", check[-1]).group(0))

    assert f"{port}:{port}" in api["ports"] and url.port == port
    assert url.path in served_paths()

    free = free_port()
    probe = [sys.executable, *check[1:-1], check[-1].replace(str(port), str(free))]
    assert subprocess.run(probe, capture_output=True, timeout=30).returncode != 0
    with running_api(tmp_path, free):
        result = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


@contextmanager
def running_api(data_dir: Path, port: int) -> Iterator[None]:
    """``pingpay-scheduler api`` on ``port``, embedded, while the block runs."""
    env = process_env(
        DATA_DIR=str(data_dir),
        PORT=str(port),
        HOST="127.0.0.1",
        API_KEYS=TEST_KEY_ENTRY,
    )
    cli = [sys.executable, "-m", "shared.cli"]
    subprocess.run(
        [*cli, "db", "upgrade"], env=env, cwd=data_dir, check=True, timeout=60
    )
    process = subprocess.Popen([*cli, "api"], env=env, cwd=data_dir)
    try:
        wait_for(lambda: listening(port), timeout=20)
        yield
    finally:
        process.terminate()
        process.wait(timeout=20)


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Process platforms.


def test_railway_services_run_real_commands_from_the_image():
    configs = {
        name: tomllib.loads((INFRA / "railway" / f"{name}.toml").read_text())
        for name in ("api", "worker")
    }
    for name, config in configs.items():
        assert (ROOT / config["build"]["dockerfilePath"]).exists()
        assert config["deploy"]["startCommand"] == f"pingpay-scheduler {name}"
        assert is_command(config["deploy"]["startCommand"].split())

    api = configs["api"]["deploy"]
    assert [command.split() for command in api["preDeployCommand"]] == [
        ["pingpay-scheduler", "db", "upgrade"]
    ]
    assert api["healthcheckPath"] in served_paths()


def test_the_procfile_names_real_commands():
    lines = (ROOT / "Procfile").read_text().splitlines()
    processes = dict(line.split(": ", 1) for line in lines if line)

    assert processes["web"] == "pingpay-scheduler api"
    assert processes["worker"] == "pingpay-scheduler worker"
    for command in processes.values():
        assert is_command(command.split()), command
