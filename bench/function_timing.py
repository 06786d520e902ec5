"""How long the api function takes: a cold import, then its first and warm calls.

Each round starts a new Python process, as a function platform starts a new
container: it imports ``functions.api.handler`` (settings, logging, the
runtime and the app are built there), then hands the handler API Gateway
events of payload 2.0, one ``GET /health`` (database and queue) and one
``GET /jobs`` at a time.

    .venv/bin/python bench/function_timing.py
    POSTGRES_URL=... REDIS_URL=... .venv/bin/python bench/function_timing.py
    # The code as Lambda gets it (infra/build-lambda.sh), under Python 3.12:
    .venv/bin/python bench/function_timing.py --python python3.12 --code build/lambda

Without POSTGRES_URL and a Redis address the service runs embedded, in a
temporary folder. The schema is created before the first round.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.web.auth import hashed_key, new_key  # noqa: E402

#: The key the events carry; the function's settings hold only its hash.
API_KEY = new_key()
EVENT = ROOT / "tests" / "events" / "http_api_v2.json"

CHILD = """
import json, sys, time
started = time.perf_counter()
from functions.api.handler import handler
imported = time.perf_counter()
template = json.loads(sys.argv[1])
calls = int(sys.argv[2])
authorization = "Bearer " + sys.argv[3]

def event(path):
    event = json.loads(json.dumps(template))
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event.setdefault("headers", {})["authorization"] = authorization
    return event

def timed(path):
    before = time.perf_counter()
    response = handler(event(path), None)
    assert response["statusCode"] == 200, response
    return time.perf_counter() - before

first = timed("/health")
warm = {path: [timed(path) for _ in range(calls)] for path in ("/health", "/jobs")}
print(json.dumps({"import": imported - started, "first": first, "warm": warm}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter")
    parser.add_argument(
        "--code", type=Path, help="folder with the code, first on the path"
    )
    parser.add_argument("--rounds", type=int, default=5, help="new processes")
    parser.add_argument("--calls", type=int, default=50, help="warm calls per path")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as data_dir:
        env = _environment(args.code, data_dir)
        _run([args.python, "-m", "shared.cli", "db", "upgrade"], env, data_dir)
        rounds = [_round(args, env, data_dir) for _ in range(args.rounds)]
        _report(args, rounds, env)


def _environment(code: Path | None, data_dir: str) -> dict[str, str]:
    env = dict(os.environ, DATA_DIR=data_dir, LOG_LEVEL="WARNING")
    env["API_KEYS"] = hashed_key(API_KEY)
    path = [str(code.resolve())] if code else []
    env["PYTHONPATH"] = os.pathsep.join(path + [str(ROOT)])
    return env


def _run(command: list[str], env: dict[str, str], cwd: str) -> str:
    result = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        sys.exit(f"{' '.join(command[:3])} failed:\n{result.stderr}")
    return result.stdout


def _round(args: argparse.Namespace, env: dict[str, str], cwd: str) -> dict:
    command = [args.python, "-c", CHILD, EVENT.read_text(), str(args.calls), API_KEY]
    return json.loads(_run(command, env, cwd).splitlines()[-1])


def _report(args: argparse.Namespace, rounds: list[dict], env: dict) -> None:
    version = _run([args.python, "-c", "import sys; print(sys.version)"], env, ".")
    backend = "servers" if os.environ.get("POSTGRES_URL") else "embedded"
    print(f"Python {version.split()[0]}, code from {args.code or ROOT}, {backend}")
    print(f"{args.rounds} cold starts, {args.calls} warm calls per path in each")
    _line("cold import of functions.api.handler", [r["import"] for r in rounds])
    _line("first call, GET /health (connects)", [r["first"] for r in rounds])
    for path in ("/health", "/jobs"):
        calls = [t for r in rounds for t in r["warm"][path]]
        _line(f"warm call, GET {path}", calls)


def _line(label: str, seconds: list[float]) -> None:
    ms = sorted(s * 1000 for s in seconds)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    print(
        f"  {label:<40} median {statistics.median(ms):7.1f} ms"
        f"  p90 {p90:7.1f} ms  min {ms[0]:7.1f} ms"
    )


if __name__ == "__main__":
    main()
