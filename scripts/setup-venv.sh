#!/usr/bin/env bash
# Create or update the project's virtual environment, one visible line per step with its time.
#   scripts/setup-venv.sh PYTHON VENV [EXTRAS]
# EXTRAS (comma-separated pyproject extras, e.g. dev or farm,ray) are installed on top of the
# runtime that `make demo` needs. torch is installed first and pinned, so that nothing later
# resolves `torch` to a multi-GB CUDA build. pip's own output goes to VENV/setup.log; the last
# lines of it are shown when a step fails.
set -euo pipefail
python="$1" venv="$2" extras="${3:-}"
log="$venv/setup.log"

step() {  # step N/M "what" command...
    local label="$1" what="$2"
    shift 2
    local started=$SECONDS
    printf '[setup %s] %s ...' "$label" "$what"
    if ! "$@" >>"$log" 2>&1; then
        printf ' FAILED\n'
        tail -n 20 "$log" >&2
        echo "setup: step '$what' failed; the whole log is $log" >&2
        exit 1
    fi
    printf ' done (%d s)\n' $((SECONDS - started))
}

if [ ! -x "$venv/bin/python" ]; then
    printf '[setup] creating %s with %s\n' "$venv" "$("$python" --version 2>&1)"
    "$python" -m venv "$venv"
fi
: >"$log"
pip=("$venv/bin/python" -m pip install --upgrade-strategy only-if-needed)
if [ -z "$extras" ]; then
    step 1/3 "pip" "${pip[@]}" --upgrade pip
    step 2/3 "torch 2.13.0, CPU build (about 750 MB)" "${pip[@]}" torch==2.13.0
    step 3/3 "nightgrade and its runtime (OpenImageIO, OpenColorIO, OpenCV, ZeroMQ)" "${pip[@]}" -e .
else
    step 1/1 "extras [$extras] (${extras//,/, })" "${pip[@]}" -e ".[$extras]"
fi
echo "[setup] $venv: $(du -sh "$venv" | cut -f1)"
