#!/usr/bin/env bash
# Creates .venv and installs the project with the extras named in $EXTRAS, pinned by constraints.txt, and the
# release receiver (receiver/: its own distribution and console script, `release-receiver`).
# Idempotent and quick on a warm machine: it re-installs only when pyproject.toml or constraints.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${EXTRAS:-demo,report,dev}"
VENV="${VENV:-.venv}"
# llama.cpp builds portably (the default build uses -march=native, which breaks on other CPUs).
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON}"
export DEEPEVAL_TELEMETRY_OPT_OUT=1
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if [ ! -x "$VENV/bin/uv" ]; then
  "$VENV/bin/pip" install --quiet "uv==0.13.9"
fi
stamp="$VENV/.installed-$(cat pyproject.toml constraints.txt receiver/pyproject.toml | sha256sum | cut -c1-16)-${EXTRAS//,/_}"
if [ ! -f "$stamp" ]; then
  # uv does not read pip.conf: hand it the machine's own index configuration, never a hard-coded host.
  uv_args=()
  for url in $(pip config get global.extra-index-url 2>/dev/null || true); do
    case "$url" in file://*) [ -d "${url#file://}" ] || continue ;; esac
    uv_args+=(--extra-index-url "$url")
  done
  for dir in $(pip config get global.find-links 2>/dev/null || true); do [ -d "$dir" ] && uv_args+=(--find-links "$dir"); done
  UV_INDEX_STRATEGY=unsafe-best-match "$VENV/bin/uv" pip install --python "$VENV/bin/python" \
    "${uv_args[@]}" -c constraints.txt -e ".[${EXTRAS}]" -e ./receiver
  touch "$stamp"
fi
# Bytecode for every installed module, written once here: with PYTHONDONTWRITEBYTECODE set (as in the image, and
# on many CI hosts) Python never writes it itself, and every `evaluator` process (each `run --workers` worker too)
# would compile DeepEval's ~700 modules again, seconds per start. The image gets the same from pip's install.
bytecode="$VENV/.bytecode-$(basename "$stamp")"
if [ ! -f "$bytecode" ]; then
  "$VENV/bin/python" -m compileall -q -j 0 "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null || true
  touch "$bytecode"
fi
