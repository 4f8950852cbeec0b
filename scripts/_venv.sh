# Sourced by run.sh and test.sh: make .venv and install requirements.txt when it changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
  echo "$want" > "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
# Page translations (locale/*.po → .mo); the .mo files are built, not committed.
if command -v msgfmt >/dev/null 2>&1; then
  python manage.py compilemessages --ignore=.venv --ignore=var -v 0
else
  echo "msgfmt not found (Debian: apt-get install gettext): pages stay in English" >&2
fi
