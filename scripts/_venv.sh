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
# Page translations (locale/*.po → .mo); the .mo files are built, not committed. msgfmt
# directly (what `manage.py compilemessages` runs): no settings, so no database, needed yet.
if command -v msgfmt >/dev/null 2>&1; then
  while IFS= read -r po; do
    mo=${po%.po}.mo
    if [ ! -e "$mo" ] || [ "$po" -nt "$mo" ]; then
      msgfmt --check-format -o "$mo" "$po"
    fi
  done < <(find . -path ./.venv -prune -o -path ./var -prune -o \
    -path '*/locale/*/LC_MESSAGES/*.po' -print)
else
  echo "msgfmt not found (Debian: apt-get install gettext): pages stay in English" >&2
fi
