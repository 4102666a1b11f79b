#!/usr/bin/env bash
# Makes Redis (127.0.0.1:6379), PostgreSQL (127.0.0.1:5432, database `test`)
# and MariaDB (127.0.0.1:3306, database `test`) answer for the test suite.
# The development machines start them before a session; this script only
# starts what is down, with the same commands, and creates the databases.
set -euo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  local name=$1 port=$2
  for _ in $(seq 1 100); do
    if listening "$port"; then echo "$name: answering on 127.0.0.1:$port"; return 0; fi
    sleep 0.2
  done
  echo "$name: nothing answers on 127.0.0.1:$port after 20 s" >&2
  return 1
}

if ! listening 6379; then
  echo "redis: starting"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
wait_for redis 6379

if ! listening 5432; then
  echo "postgresql: starting"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
fi
wait_for postgresql 5432
if ! psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname = 'test'" | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -c "create database test"
fi

if ! listening 3306; then
  echo "mariadb: starting"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
fi
wait_for mariadb 3306
mariadb -h 127.0.0.1 -u root -e "create database if not exists test"
