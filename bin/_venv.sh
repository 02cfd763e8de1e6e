# Sourced by bin/start and bin/test: a venv in .venv with the pinned requirements.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${VENV:-.venv}"
REQS="${1:-requirements.txt}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
STAMP="$VENV/.installed-$(cat requirements*.txt | sha256sum | cut -c1-16)-$(basename "$REQS")"
if [ ! -f "$STAMP" ]; then
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -r "$REQS"
    touch "$STAMP"
fi
# named and rndc live in /usr/sbin, which a non-login PATH may lack.
export PATH="$PWD/$VENV/bin:$PATH:/usr/sbin:/sbin"
