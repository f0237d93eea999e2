#!/usr/bin/env bash
# A throwaway PostgreSQL server on 127.0.0.1 for the distributed-search test (tests/test_search.py):
# installs Debian's postgresql when missing, initialises a cluster in $TINYLSTM_PG_DIR (default
# /tmp/tinylstm-pg) owned by the postgres user, starts it on port $TINYLSTM_PG_PORT (default 55432)
# and prints the URL to export as TINYLSTM_TEST_POSTGRES_URL. `scripts/test-postgres.sh stop` stops it.
set -euo pipefail
DIR=${TINYLSTM_PG_DIR:-/tmp/tinylstm-pg}
PORT=${TINYLSTM_PG_PORT:-55432}
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
if [ -z "$(bindir)" ]; then
  echo "test-postgres: installing postgresql with apt-get" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi
BIN=$(bindir)
as_pg() { if [ "$(id -un)" = postgres ]; then "$@"; else $SUDO runuser -u postgres -- "$@"; fi; }
if [ "${1:-start}" = stop ]; then
  as_pg "$BIN/pg_ctl" -D "$DIR" -m fast stop >/dev/null 2>&1 || true
  exit 0
fi
if [ ! -f "$DIR/PG_VERSION" ]; then
  $SUDO mkdir -p "$DIR" && $SUDO chown postgres: "$DIR"
  as_pg "$BIN/initdb" -D "$DIR" -A trust -U postgres >/dev/null
fi
if ! as_pg "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
  as_pg "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w \
    -o "-h 127.0.0.1 -p $PORT -k $DIR -c fsync=off" start >/dev/null
fi
PSQL=("$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qtA)
if [ -z "$(as_pg "${PSQL[@]}" -c "select 1 from pg_database where datname='tinylstm'")" ]; then
  as_pg "${PSQL[@]}" -c "create database tinylstm" >/dev/null
fi
echo "postgresql://postgres@127.0.0.1:$PORT/tinylstm"
