#!/usr/bin/env bash
# Makes a Memcached server answer on 127.0.0.1:11211 for the test suite.
# Idempotent: installs Debian's memcached only when it is missing, starts it
# only when nothing listens on the port, then waits until it answers
# `version`. Safe to run before every test run.
set -euo pipefail

HOST=127.0.0.1
PORT="${MEMCACHED_PORT:-11211}"
PIDFILE="${MEMCACHED_PIDFILE:-/tmp/effect-session-memcached.pid}"
MEMORY_MB="${MEMCACHED_MEMORY_MB:-64}"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Answers 0 when a memcached on HOST:PORT replies to `version`.
answers() {
  (
    exec 3<>"/dev/tcp/${HOST}/${PORT}" || exit 1
    printf 'version\r\n' >&3
    IFS= read -r -t 2 reply <&3 || exit 1
    [[ "$reply" == VERSION* ]]
  ) 2>/dev/null
}

if answers; then
  echo "memcached: already answering on ${HOST}:${PORT}"
  exit 0
fi

if ! command -v memcached >/dev/null 2>&1; then
  echo "memcached: installing the Debian package"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq memcached >/dev/null
fi

# Something else may hold the port without speaking memcached: refuse to
# start a second server and let the wait below report it.
if ! (exec 3<>"/dev/tcp/${HOST}/${PORT}") 2>/dev/null; then
  echo "memcached: starting on ${HOST}:${PORT} (pid file ${PIDFILE})"
  # -u is required when started as root; memcached refuses to run as root otherwise.
  memcached -d -l "$HOST" -p "$PORT" -U 0 -m "$MEMORY_MB" -u "$(id -un)" -P "$PIDFILE"
fi

for _ in $(seq 1 50); do
  if answers; then
    echo "memcached: answering on ${HOST}:${PORT}"
    exit 0
  fi
  sleep 0.2
done

echo "memcached: nothing answers on ${HOST}:${PORT} after 10 s" >&2
exit 1
