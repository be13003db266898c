#!/usr/bin/env bash
# Installs what the pool and its tests need on a fresh Debian/Ubuntu machine, then the pool itself
# into ./.venv (editable, so the native extension is compiled from native/*.c).
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need litecoind litecoind
need cc build-essential
need redis-server redis-server
# The dashboard tests drive Debian's Chromium headless (Playwright uses it; no browser download).
need chromium chromium
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  || missing+=(python3-dev)
# PostgreSQL's server binaries live off PATH on Debian (/usr/lib/postgresql/<version>/bin).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
if [[ " ${missing[*]} " == *" postgresql "* ]]; then
  # The pool starts its own servers: keep Debian from creating and starting a cluster on port 5432.
  mkdir -p /etc/postgresql-common 2>/dev/null \
    && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf 2>/dev/null || true
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bootstrap: installing system packages: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# pip's output goes to a log, shown only when an install fails (a newcomer's first screen stays readable).
log=.venv/bootstrap-pip.log
if ! { .venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -q -e '.[test]'; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "bootstrap: installing the pool into .venv failed (the pip output is above and in $log)" >&2
  exit 1
fi
