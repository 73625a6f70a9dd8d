#!/usr/bin/env bash
# Installs the PostgreSQL server binaries (initdb, pg_ctl, postgres) that tests/test_postgres.py
# starts a throwaway cluster with. Safe to run again: prints nothing when they are already there.
set -euo pipefail

have_server() {
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && return 0
  command -v initdb >/dev/null 2>&1
}

have_server && exit 0

fail() {
  echo "install-postgres: $*" >&2
  echo "install-postgres: install the PostgreSQL server package yourself (Debian/Ubuntu: apt-get install postgresql) and run again" >&2
  exit 1
}

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    fail "PostgreSQL server binaries (initdb) not found, and installing them needs root (or passwordless sudo)"
  fi
fi
command -v apt-get >/dev/null 2>&1 || fail "PostgreSQL server binaries (initdb) not found and apt-get is not available"

echo "install-postgres: PostgreSQL server binaries not found; installing the postgresql package" >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update \
  || fail "apt-get update failed"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
  || fail "apt-get install postgresql failed"
have_server || fail "the postgresql package is installed but no initdb was found under /usr/lib/postgresql/*/bin or on PATH"
echo "install-postgres: installed $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tr '\n' ' ')" >&2
