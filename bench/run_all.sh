#!/bin/sh
# Run every kugetsu-tui benchmark against xargs, GNU parallel and task-spooler, in one run.
#
# usage: bench/run_all.sh [--quick] [--label TEXT] [--no-readme]
#
# Installs the peers it needs when missing (apt-get: parallel, task-spooler), runs each
# figure, keeps the raw numbers as JSON and a Markdown table in bench/results/, and puts
# the table in README.md between <!-- bench:start --> and <!-- bench:end -->.
# The Python used is $PYTHON, else the repo's .venv, else python3 (which must be able to
# import kugetsu_tui; otherwise a venv is made in bench/.venv with the package installed).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
quick=""
label=""
readme="$repo/README.md"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick="--quick"; shift ;;
        --label) label="$2"; shift 2 ;;
        --no-readme) readme=""; shift ;;
        *) echo "run_all.sh: unknown option $1 (expected --quick, --label TEXT, --no-readme)" >&2; exit 2 ;;
    esac
done

started=$(date +%s)

# --- the peers -------------------------------------------------------------------------
missing=""
command -v parallel >/dev/null 2>&1 || missing="$missing parallel"
command -v tsp >/dev/null 2>&1 || missing="$missing task-spooler"
if [ -n "$missing" ]; then
    echo "installing:$missing" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if command -v apt-get >/dev/null 2>&1; then
        $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq $missing >/dev/null \
            || echo "could not install$missing; those columns stay empty" >&2
    else
        echo "no apt-get here; install$missing yourself, those columns stay empty" >&2
    fi
fi

# --- the interpreter with kugetsu_tui --------------------------------------------------
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$repo/.venv/bin/python" ]; then
        PYTHON="$repo/.venv/bin/python"
    elif [ -x "$repo/../.venv/bin/python" ] && "$repo/../.venv/bin/python" -c 'import kugetsu_tui' 2>/dev/null; then
        PYTHON="$repo/../.venv/bin/python"
    elif python3 -c 'import kugetsu_tui' 2>/dev/null; then
        PYTHON=python3
    else
        echo "making bench/.venv with kugetsu-tui installed" >&2
        python3 -m venv "$here/.venv"
        "$here/.venv/bin/pip" install -q -e "$repo"
        PYTHON="$here/.venv/bin/python"
    fi
fi
export PYTHON
# Bytecode compiled ahead, as pip does on install: without it every `kugetsu` call would
# compile its modules again (PYTHONDONTWRITEBYTECODE=1) and time the compiler, not kugetsu.
unset PYTHONDONTWRITEBYTECODE
"$PYTHON" -m compileall -q "$repo/kugetsu_tui" >/dev/null

# --- the figures -----------------------------------------------------------------------
stamp=$(date +%Y%m%d-%H%M%S)
name="$stamp${label:+-$label}"
raw="$here/results/raw/$name"
mkdir -p "$raw"
figures="dispatch makespan worktree_cost enqueue cap_pressure status_scale"
# The dashboard's figures need the dashboard (and a pseudo-terminal, which dashboard.py opens).
[ -d "$repo/kugetsu_tui/tui" ] && figures="$figures dashboard"
for figure in $figures; do
    echo "== $figure" >&2
    "$PYTHON" "$here/$figure.py" $quick --out "$raw/$figure.json"
done

elapsed=$(( $(date +%s) - started ))
"$PYTHON" "$here/report.py" "$raw" "$here/results/$name" --label "$label" --elapsed "$elapsed" \
    ${readme:+--readme "$readme"}
cp "$here/results/$name.json" "$here/results/latest.json"
cp "$here/results/$name.md" "$here/results/latest.md"
echo "wrote bench/results/$name.{json,md}" >&2
