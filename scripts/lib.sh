# Shared by scripts/*: idempotent installs. Source it; it changes nothing until called.
VENV="${OTEL_KIT_VENV:-$PWD/.venv}"
CACHE="${OTEL_KIT_CACHE:-$HOME/.cache/otel-kit}"

ensure_apt_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing Debian packages: ${missing[*]}"
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  # No service is started by the package: the tests and the local stack start their own.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_venv() {
  local stamp="$VENV/.otel-kit-installed"
  if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then return 0; fi
  echo "==> preparing $VENV"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "uv==0.13.9"
  UV_CACHE_DIR="$CACHE/uv" "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" -e ".[dev]" && touch "$stamp"
}
