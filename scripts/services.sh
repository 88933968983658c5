#!/usr/bin/env bash
# services.sh start|stop|status|env: the real servers the integration tests
# and the production config use, on loopback, with data under one directory.
#
#   Redis        127.0.0.1:${REDIS_PORT:-16379}
#   MariaDB      127.0.0.1:${MYSQL_PORT:-13306} (root, empty password)
#   ClickHouse   127.0.0.1:${CH_PORT:-19000} native, :${CH_HTTP_PORT:-18123} http
#   Kafka-protocol broker (lottery broker, kfake) 127.0.0.1:${KAFKA_PORT:-19092}
#
# start installs what is missing from Debian's packages (as root; also
# Chromium for the dashboard's browser test), starts
# each server, waits until it answers and writes $DIR/env with the
# LOTTERY_TEST_* addresses the tests read. stop kills them by pid.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${LOTTERY_SERVICES_DIR:-$PWD/.services}
REDIS_PORT=${REDIS_PORT:-16379}
MYSQL_PORT=${MYSQL_PORT:-13306}
CH_PORT=${CH_PORT:-19000}
CH_HTTP_PORT=${CH_HTTP_PORT:-18123}
CH_INTER_PORT=${CH_INTER_PORT:-19009}
KAFKA_PORT=${KAFKA_PORT:-19092}
GO=${GO:-go}

log() { echo "services: $*" >&2; }

install_missing() {
	local pkgs=()
	command -v redis-server >/dev/null || pkgs+=(redis-server)
	command -v mariadbd >/dev/null || pkgs+=(mariadb-server)
	command -v clickhouse-server >/dev/null || pkgs+=(clickhouse-server)
	command -v chromium >/dev/null || pkgs+=(chromium) # the dashboard's browser test
	[ ${#pkgs[@]} -eq 0 ] && return 0
	if [ "$(id -u)" != 0 ]; then
		log "missing ${pkgs[*]} and not root: install them with apt-get"
		return 1
	fi
	log "installing ${pkgs[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null || true
	apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null
	# Debian's packages start their own instances; ours run beside them on
	# other ports, so theirs are left alone.
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() { # name seconds command...
	local name=$1 secs=$2; shift 2
	for _ in $(seq $((secs * 10))); do
		if "$@" >/dev/null 2>&1; then log "$name ready"; return 0; fi
		sleep 0.1
	done
	log "$name did not answer in ${secs}s"
	return 1
}

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_redis() {
	mkdir -p "$DIR/redis"
	alive "$DIR/redis.pid" || redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" \
		--appendonly no --dir "$DIR/redis" --pidfile "$DIR/redis.pid" --logfile "$DIR/redis/redis.log"
	wait_for redis 20 redis-cli -p "$REDIS_PORT" ping
}

start_mariadb() {
	if ! alive "$DIR/mariadb.pid"; then
		if [ ! -d "$DIR/mariadb/mysql" ]; then
			mkdir -p "$DIR/mariadb"
			mariadb-install-db --user=root --datadir="$DIR/mariadb" --auth-root-authentication-method=normal \
				--skip-test-db >"$DIR/mariadb-install.log" 2>&1
		fi
		nohup mariadbd --user=root --datadir="$DIR/mariadb" --port="$MYSQL_PORT" --bind-address=127.0.0.1 \
			--socket="$DIR/mariadb.sock" --pid-file="$DIR/mariadb.pid" --skip-log-bin \
			--innodb-flush-log-at-trx-commit=2 --max-connections=1000 >"$DIR/mariadb.log" 2>&1 &
	fi
	wait_for mariadb 60 mariadb -h127.0.0.1 -P"$MYSQL_PORT" -uroot -e 'select 1'
}

start_clickhouse() {
	mkdir -p "$DIR/clickhouse"
	if ! alive "$DIR/clickhouse.pid"; then
		(cd "$DIR/clickhouse" && clickhouse-server --daemon --pid-file="$DIR/clickhouse.pid" \
			--config-file=/etc/clickhouse-server/config.xml -- --path="$DIR/clickhouse/" \
			--tcp_port="$CH_PORT" --http_port="$CH_HTTP_PORT" --interserver_http_port="$CH_INTER_PORT" \
			--listen_host=127.0.0.1 --logger.log="$DIR/clickhouse/server.log" \
			--logger.errorlog="$DIR/clickhouse/server.err.log" </dev/null >/dev/null 2>&1)
	fi
	wait_for clickhouse 60 sh -c "curl -fsS http://127.0.0.1:$CH_HTTP_PORT/ping | grep -q Ok"
}

start_broker() {
	mkdir -p "$DIR/broker" bin
	if ! alive "$DIR/broker.pid"; then
		$GO build -o bin/lottery ./cmd/lottery
		nohup bin/lottery broker --addr "127.0.0.1:$KAFKA_PORT" --data "$DIR/broker" >"$DIR/broker.log" 2>&1 &
		echo $! >"$DIR/broker.pid"
	fi
	wait_for broker 30 tcp_open "$KAFKA_PORT"
}

write_env() {
	cat >"$DIR/env" <<ENV
export LOTTERY_TEST_REDIS=127.0.0.1:$REDIS_PORT
export LOTTERY_TEST_MYSQL='root@tcp(127.0.0.1:$MYSQL_PORT)/'
export LOTTERY_TEST_CLICKHOUSE=127.0.0.1:$CH_PORT
export LOTTERY_TEST_KAFKA=127.0.0.1:$KAFKA_PORT
ENV
	log "addresses in $DIR/env"
}

stop_one() { # name pidfile
	if alive "$2"; then
		local pid; pid=$(cat "$2")
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
		log "$1 stopped"
	fi
	rm -f "$2"
}

case "${1:-}" in
start)
	mkdir -p "$DIR"
	install_missing
	start_redis
	start_mariadb
	start_clickhouse
	start_broker
	write_env
	;;
stop)
	stop_one broker "$DIR/broker.pid"
	stop_one clickhouse "$DIR/clickhouse.pid"
	stop_one mariadb "$DIR/mariadb.pid"
	stop_one redis "$DIR/redis.pid"
	;;
status)
	for s in redis mariadb clickhouse broker; do
		if alive "$DIR/$s.pid"; then echo "$s running (pid $(cat "$DIR/$s.pid"))"; else echo "$s stopped"; fi
	done
	;;
env)
	cat "$DIR/env"
	;;
*)
	echo "usage: $0 start|stop|status|env" >&2
	exit 2
	;;
esac
