#!/usr/bin/env bash
# Make sure a PostgreSQL and a Redis answer, then print `export` lines for
# DATABASE_URL, REDIS_URL, TEST_DATABASE_URL and TEST_REDIS_URL on stdout
# (for `eval "$(.ci/services.sh)"`). Messages go to stderr.
#
# - Already set DATABASE_URL / REDIS_URL are used as they are.
# - Otherwise a server answering on 127.0.0.1 (PG_PORT, default 5432;
#   REDIS_PORT, default 6379) is used.
# - Otherwise a private one is started (a throw-away cluster under /tmp, a
#   redis-server without persistence), after installing the Debian packages
#   when running as root. Not root and nothing installed: say what to do.
#   What it started is listed in ANALYTICSD_SERVICES_STARTED (also printed).
#
# `.ci/services.sh stop` stops what ANALYTICSD_SERVICES_STARTED lists and
# removes the directories this script created for them: `make test` ends
# with it, so that a run leaves no server of its own behind.
set -euo pipefail

PG_PORT=${PG_PORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}
STATE=${TMPDIR:-/tmp}/analyticsd-dev
STARTED=() # pg:<dir> | redis:<pidfile> | dir:<directory this run created>
say() { echo "services: $*" >&2; }
die() { say "$*"; exit 1; }

# state_dir makes $STATE, remembering when this run created it.
state_dir() {
	if [ ! -d "$STATE" ]; then
		mkdir -p "$STATE"
		STARTED+=("dir:$STATE")
	fi
}

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

apt_install() {
	if [ "$(id -u)" != 0 ]; then
		die "nothing answers and '$1' is not installed. Install it: sudo apt-get install -y postgresql redis-server
          (or point DATABASE_URL / REDIS_URL at servers you have)."
	fi
	command -v apt-get >/dev/null || die "no apt-get: install $1 with your package manager, or set DATABASE_URL / REDIS_URL"
	say "installing $1 (apt-get) …"
	local log="$STATE/apt-$1.log"
	state_dir
	if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1"; } >"$log" 2>&1; then
		tail -n 20 "$log" >&2
		die "apt-get install $1 failed (log: $log)"
	fi
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

pg_answers() {
	if command -v pg_isready >/dev/null; then
		pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -t 2
	else
		tcp_open "$PG_PORT"
	fi
}

# as_pg runs a PostgreSQL server tool: they refuse to run as root.
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

start_private_pg() {
	local bin dir
	bin=$(pg_bin)
	if [ -z "$bin" ]; then
		apt_install postgresql
		bin=$(pg_bin)
		[ -n "$bin" ] || die "postgresql installed but no server binaries under /usr/lib/postgresql"
	fi
	dir="$STATE/pg-$PG_PORT"
	state_dir
	[ -d "$dir" ] || STARTED+=("dir:$dir")
	mkdir -p "$dir"
	[ "$(id -u)" = 0 ] && { id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres; chown postgres "$STATE" "$dir"; }
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		say "creating a private PostgreSQL cluster in $dir/data"
		as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
			|| { cat "$dir/initdb.log" >&2; die "initdb failed"; }
	fi
	say "starting a private PostgreSQL on 127.0.0.1:$PG_PORT"
	as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
		-o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $dir -c fsync=off -c max_connections=300" start >/dev/null \
		|| { tail -n 20 "$dir/server.log" >&2; die "PostgreSQL did not start (log: $dir/server.log)"; }
	STARTED+=("pg:$dir")
}

redis_answers() {
	if command -v redis-cli >/dev/null; then
		[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]
	else
		tcp_open "$REDIS_PORT" || return 1
		exec 4<>"/dev/tcp/127.0.0.1/$REDIS_PORT" && printf 'PING\r\n' >&4 && read -r -t 2 line <&4 && exec 4>&- && [[ $line == +PONG* ]]
	fi
}

start_private_redis() {
	command -v redis-server >/dev/null || apt_install redis-server
	state_dir
	say "starting a private redis-server on 127.0.0.1:$REDIS_PORT"
	redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
		--dir "$STATE" --logfile "$STATE/redis-$REDIS_PORT.log" --pidfile "$STATE/redis-$REDIS_PORT.pid" >/dev/null
	STARTED+=("redis:$STATE/redis-$REDIS_PORT.pid")
	for _ in $(seq 50); do redis_answers && return 0; sleep 0.1; done
	die "redis-server did not answer (log: $STATE/redis-$REDIS_PORT.log)"
}

# stop_started stops the servers in ANALYTICSD_SERVICES_STARTED, then
# removes the directories listed there (after the servers using them).
stop_started() {
	local s pid dirs=()
	for s in ${ANALYTICSD_SERVICES_STARTED:-}; do
		case $s in
		pg:*)
			say "stopping the private PostgreSQL in ${s#pg:}"
			as_pg "$(pg_bin)/pg_ctl" -D "${s#pg:}/data" -m fast -w -t 60 stop >/dev/null || say "pg_ctl stop failed"
			;;
		redis:*)
			pid=$(cat "${s#redis:}" 2>/dev/null) || continue
			say "stopping the private redis-server (pid $pid)"
			kill "$pid" 2>/dev/null || continue
			for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			;;
		dir:*) dirs+=("${s#dir:}") ;;
		esac
	done
	for s in "${dirs[@]}"; do
		case $s in "$STATE"*) rm -rf -- "$s" ;; esac
	done
}

if [ "${1:-}" = stop ]; then
	stop_started
	exit 0
fi

if [ -z "${DATABASE_URL:-}" ]; then
	pg_answers || start_private_pg
	for _ in $(seq 50); do pg_answers && break; sleep 0.1; done
	pg_answers || die "PostgreSQL on 127.0.0.1:$PG_PORT does not answer"
	DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/analytics?sslmode=disable"
	TEST_DATABASE_URL=${TEST_DATABASE_URL:-"postgres://postgres@127.0.0.1:$PG_PORT/analytics_test?sslmode=disable"}
	if command -v psql >/dev/null && ! psql -q -X -w "postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable" -c 'select 1' >/dev/null 2>&1; then
		die "PostgreSQL on 127.0.0.1:$PG_PORT refuses user postgres without a password: set DATABASE_URL and TEST_DATABASE_URL with credentials"
	fi
fi
if [ -z "${REDIS_URL:-}" ]; then
	redis_answers || start_private_redis
	REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
	TEST_REDIS_URL=${TEST_REDIS_URL:-"redis://127.0.0.1:$REDIS_PORT/0"}
fi
# Tests default to the same servers, in their own database.
if [ -z "${TEST_DATABASE_URL:-}" ]; then
	TEST_DATABASE_URL=$(printf '%s' "$DATABASE_URL" | sed -E 's#/([^/?]+)(\?|$)#/\1_test\2#')
fi
TEST_REDIS_URL=${TEST_REDIS_URL:-$REDIS_URL}

printf 'export DATABASE_URL=%q\nexport REDIS_URL=%q\nexport TEST_DATABASE_URL=%q\nexport TEST_REDIS_URL=%q\nexport ANALYTICSD_SERVICES_STARTED=%q\n' \
	"$DATABASE_URL" "$REDIS_URL" "$TEST_DATABASE_URL" "$TEST_REDIS_URL" "${STARTED[*]}"
