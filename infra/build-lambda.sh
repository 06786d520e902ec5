#!/usr/bin/env bash
# Lays out the service and every package it needs in build/lambda, the code
# of the functions in infra/template.yaml, for Lambda's Python 3.12 on x86_64.
# Runs on any machine with Python 3.11 or newer: packages with compiled parts
# come as wheels built for Lambda, whatever this machine is.
set -euo pipefail
cd "$(dirname "$0")/.."

rm -rf build/lambda build/wheel build/venv
python3 -m venv build/venv
build/venv/bin/pip wheel --quiet --no-deps --wheel-dir build/wheel .
build/venv/bin/pip install --quiet --no-compile --target build/lambda \
  --platform manylinux2014_x86_64 --implementation cp --python-version 3.12 \
  --only-binary=:all: build/wheel/pingpay_scheduler-*.whl

# Lambda cannot write bytecode next to the code, so a cold start would
# compile every module again; compile them now when Python 3.12 is here.
if python3.12 -c "" 2>/dev/null; then
  python3.12 -m compileall -q build/lambda
else
  echo "no python3.12 here: the functions compile their modules at each cold start"
fi
echo "build/lambda: $(du -sh build/lambda | cut -f1)"
