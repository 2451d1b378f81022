#!/usr/bin/env bash
# CI step (issue 18 defect 1): a plain `pip install -e .`, without the torch extra, runs the
# commands that need no torch, and `train` says in one line how to install it. Fails on any
# traceback or non-zero exit. Usage: .ci/no_torch_check.sh [VENV_DIR] (default: a temporary one).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
venv="${1:-$work/venv-no-torch}"
trap 'rm -rf "$work"' EXIT

python3 -m venv "$venv"
. "$venv/bin/activate"
pip install -q -e "$repo"
if python -c "import torch" 2>/dev/null; then
    echo "no_torch_check: torch is importable in $venv; this check needs a venv without it" >&2
    exit 1
fi

cd "$work"
fail=0
check() {  # check EXPECTED_STATUS COMMAND...: the status and no traceback
    local want="$1"; shift
    local status=0
    "$@" >"$work/out" 2>"$work/err" || status=$?
    if [ "$status" != "$want" ] || grep -q "Traceback" "$work/out" "$work/err"; then
        echo "FAIL ($status, expected $want): $*" >&2
        tail -n 20 "$work/err" >&2
        fail=1
    else
        echo "ok: $*"
    fi
}
check 0 spikeforge --help
check 0 spikeforge info
check 0 spikeforge eval --quiet
check 0 spikeforge generate -o "$work/accel"
check 0 spikeforge sim --images 2 --quiet
check 0 spikeforge build --help
check 0 spikeforge train --print-config
check 2 spikeforge train -o "$work/m.sfm"
grep -q 'pip install "spikeforge\[torch\]"' "$work/err" || { echo "FAIL: train names no torch extra" >&2; fail=1; }
test -s "$work/accel/spikeforge_accel.v" || { echo "FAIL: generate wrote no Verilog" >&2; fail=1; }
exit "$fail"
