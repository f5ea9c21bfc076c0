#!/usr/bin/env bash
# The Python package's tests: builds it with maturin into a fresh virtual environment (pip
# install of this folder), then runs pytest: the package against the `sagitta` binary on the
# samples, and the Ray Data pipeline on a local Ray instance. Needs python3 with venv and the
# binary (`cargo build --release`; CI's `cargo test --release` leaves it in target/release).
set -euo pipefail
cd "$(dirname "$0")"
root="$(cd ../.. && pwd)"
venv="${SAGITTA_PYTHON_VENV:-$root/target/python-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q maturin pytest numpy pillow pyarrow pandas "ray[data]"
# The repository's build folder: the dependencies `cargo build --release` compiled are reused.
CARGO_TARGET_DIR="$root/target" "$venv/bin/pip" install -q --force-reinstall --no-deps .
export SAGITTA_BIN="${SAGITTA_BIN:-$root/target/release/sagitta}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
cd tests
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
