#!/usr/bin/env bash
# clickhouse.sh — run a private clickhouse-server for development and tests.
#
#   scripts/clickhouse.sh start  DIR [TCP_PORT HTTP_PORT]   start (idempotent), print the TCP port
#   scripts/clickhouse.sh stop   DIR                        stop and wait for exit (idempotent)
#   scripts/clickhouse.sh status DIR                        print the TCP port if running; exit 1 if not
#
# Everything the server writes (data, tmp, logs, pid, the generated config)
# lives under DIR. It listens on 127.0.0.1 only. Ports not given are chosen
# free; once chosen they are kept in DIR/ports so a restart reuses them (a
# client's DSN stays valid). The interserver port is disabled, so several
# servers can run side by side. Data survives stop/start. Users beyond the
# password-less loopback "default" go in DIR/users.d/, which the server
# reloads by itself: `tpflow migrate --readonly-user grafana
# --readonly-password-file PW --users-file DIR/users.d/tpflow-readonly.xml`
# adds the read-only user for Grafana and the API (SECURITY.md).
#
# Environment: CLICKHOUSE_SERVER (binary, default clickhouse-server),
# CLICKHOUSE_START_TIMEOUT (seconds, default 60).
set -euo pipefail

die() { echo "clickhouse.sh: $*" >&2; exit 1; }

usage() { die "usage: $0 start DIR [TCP_PORT HTTP_PORT] | stop DIR | status DIR"; }

server_bin() {
	local b=${CLICKHOUSE_SERVER:-clickhouse-server}
	if command -v "$b" >/dev/null 2>&1; then command -v "$b"; return; fi
	# Debian installs the server in /usr/sbin, which is not on every PATH.
	if [[ -x /usr/sbin/$b ]]; then echo "/usr/sbin/$b"; return; fi
	die "$b not found (Debian: apt-get install clickhouse-server clickhouse-client)"
}

# free_port prints a TCP port on 127.0.0.1 that nobody listens on now.
free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$(( (RANDOM % 20000) + 30000 ))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

pid_of() {
	local dir=$1 pid
	[[ -f $dir/clickhouse.pid ]] || return 1
	pid=$(tr -d '[:space:]' <"$dir/clickhouse.pid")
	[[ -n $pid ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	# A recycled pid must be a clickhouse process using this config.
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--config-file=$dir/config.xml" || return 1
	echo "$pid"
}

answers() {
	local port=$1
	# The native protocol handshake is what clients use; fall back to HTTP
	# when clickhouse-client is missing.
	if command -v clickhouse-client >/dev/null 2>&1; then
		[[ $(clickhouse-client --host 127.0.0.1 --port "$port" --query 'SELECT 1' 2>/dev/null) == 1 ]]
	else
		local http
		http=$(sed -n 2p "$DIR/ports")
		exec 3<>"/dev/tcp/127.0.0.1/$http" || return 1
		printf 'GET /?query=SELECT%%201 HTTP/1.0\r\n\r\n' >&3
		grep -q '^1' <&3
	fi
}

# write_config fills the server configuration shared with the Go test
# helper (pipeline/clickhouse/chtest/server/) for DIR and the ports.
write_config() {
	local dir=$1 tcp=$2 http=$3
	local tmpl
	tmpl="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/pipeline/clickhouse/chtest/server"
	mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas" "$dir/log" "$dir/users.d"
	sed -e "s|@DIR@|$dir|g" -e "s|@TCP@|$tcp|g" -e "s|@HTTP@|$http|g" "$tmpl/config.xml" >"$dir/config.xml"
	cp "$tmpl/users.xml" "$dir/users.xml"
}

cmd_start() {
	local tcp=${1:-} http=${2:-} pid bin timeout deadline chosen=0 attempt
	mkdir -p "$DIR/log"
	if pid=$(pid_of "$DIR"); then
		sed -n 1p "$DIR/ports"
		return
	fi
	if [[ -z $tcp && -f $DIR/ports ]]; then
		tcp=$(sed -n 1p "$DIR/ports")
		http=$(sed -n 2p "$DIR/ports")
	fi
	[[ -n $tcp ]] || chosen=1
	bin=$(server_bin)
	timeout=${CLICKHOUSE_START_TIMEOUT:-60}
	for attempt in 1 2 3 4 5; do
		if ((chosen)); then
			# A port found free can be taken by another process before
			# the server binds it: then the next attempt picks others.
			tcp=$(free_port)
			http=$(free_port)
			[[ $http != "$tcp" ]] || http=$(free_port)
		fi
		[[ -n $http ]] || { http=$(free_port); [[ $http != "$tcp" ]] || http=$(free_port); }
		[[ $tcp =~ ^[0-9]+$ && $http =~ ^[0-9]+$ ]] || die "ports must be numbers, got '$tcp' '$http'"
		printf '%s\n%s\n' "$tcp" "$http" >"$DIR/ports"
		write_config "$DIR" "$tcp" "$http"
		rm -f "$DIR/clickhouse.pid"
		: >"$DIR/log/clickhouse-server.err.log"
		# When run as root, 18.16 runs as root (it does not switch user); the
		# files under DIR then belong to root, which is fine for a private
		# server. Newer servers refuse to run as a different user than the owner
		# of the data directory, which is the invoking user here either way.
		"$bin" --config-file="$DIR/config.xml" --pid-file="$DIR/clickhouse.pid" --daemon \
			>>"$DIR/log/stdout.log" 2>&1 || true
		deadline=$(( $(date +%s) + timeout ))
		while :; do
			if answers "$tcp"; then
				echo "$tcp"
				return
			fi
			if ((chosen && attempt < 5)) && ! pid_of "$DIR" >/dev/null &&
				grep -q 'Address already in use' "$DIR/log/clickhouse-server.err.log" 2>/dev/null; then
				echo "clickhouse.sh: a port was taken before the server bound it; trying other ports" >&2
				continue 2
			fi
			if (( $(date +%s) >= deadline )); then
				echo "clickhouse.sh: server in $DIR did not answer SELECT 1 on 127.0.0.1:$tcp within ${timeout}s; log tail:" >&2
				for f in "$DIR/log/clickhouse-server.err.log" "$DIR/log/clickhouse-server.log" "$DIR/log/stdout.log"; do
					[[ -s $f ]] && { echo "==> $f <=="; tail -n 30 "$f"; } >&2
				done
				exit 1
			fi
			sleep 0.1
		done
	done
}

cmd_stop() {
	local pid
	pid=$(pid_of "$DIR") || { rm -f "$DIR/clickhouse.pid"; return 0; }
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 300); do
		kill -0 "$pid" 2>/dev/null || { rm -f "$DIR/clickhouse.pid"; return 0; }
		sleep 0.1
	done
	echo "clickhouse.sh: server $pid did not stop in 30s; killing it" >&2
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$DIR/clickhouse.pid"
}

cmd_status() {
	pid_of "$DIR" >/dev/null || { echo "stopped"; exit 1; }
	sed -n 1p "$DIR/ports"
}

[[ $# -ge 2 ]] || usage
CMD=$1
DIR=$2
shift 2
if [[ $CMD == start ]]; then mkdir -p "$DIR" || die "cannot create $DIR"; fi
if [[ -d $DIR ]]; then
	DIR=$(cd "$DIR" && pwd)
elif [[ $CMD == stop ]]; then
	exit 0
else
	echo "stopped"
	exit 1
fi
case $CMD in
start) [[ $# -eq 0 || $# -eq 2 ]] || usage; cmd_start "$@" ;;
stop) [[ $# -eq 0 ]] || usage; cmd_stop ;;
status) [[ $# -eq 0 ]] || usage; cmd_status ;;
*) usage ;;
esac
