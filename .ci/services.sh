#!/usr/bin/env bash
# Check that Redis, PostgreSQL and RabbitMQ answer on 127.0.0.1; start any that does not.
set -uo pipefail

wait_for() { # name, seconds, command...
  local name=$1 secs=$2; shift 2
  for _ in $(seq 1 "$secs"); do
    if "$@" >/dev/null 2>&1; then echo "$name: up"; return 0; fi
    sleep 1
  done
  echo "$name: did not answer within ${secs}s" >&2
  return 1
}

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "redis: starting"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
wait_for redis 30 redis-cli -h 127.0.0.1 -p 6379 ping || exit 1

if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  echo "postgres: starting"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi
wait_for postgres 60 pg_isready -h 127.0.0.1 -p 5432 || exit 1

if ! tcp_open 5672; then
  echo "rabbitmq: starting"
  rabbitmq-server -detached
fi
wait_for rabbitmq 120 tcp_open 5672 || exit 1
# The port opens before the broker takes connections: wait for the app to run.
wait_for rabbitmq-app 120 rabbitmqctl -q await_startup || exit 1

# MariaDB: the third-party adapter example (examples/mysql-adapter) runs the conformance suite on it.
if ! mysqladmin -h 127.0.0.1 -u root ping >/dev/null 2>&1; then
  echo "mariadb: starting"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
fi
wait_for mariadb 60 mysqladmin -h 127.0.0.1 -u root ping || exit 1
