#!/usr/bin/env bash
# check-run.sh: shows that `make run` brings sipd up. It starts `make run` in
# the background (its own process group), waits up to CHECK_RUN_WAIT seconds
# (default 60) for a 200 to OPTIONS on 127.0.0.1:5060 over UDP and over TCP,
# sent by sipp with services/e2e/scenarios/options.xml, then stops the whole
# process group and checks that nothing is left running.
#
# Exit status: 0 when both transports answered, 1 otherwise.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1

HOST=127.0.0.1
PORT=5060
WAIT=${CHECK_RUN_WAIT:-60}
SCENARIO=services/e2e/scenarios/options.xml

log() { echo "check-run: $*" >&2; }

if ! command -v sipp >/dev/null 2>&1; then
	log "sipp not found in PATH (install SIPp, e.g. the sip-tester package)"
	exit 1
fi

workdir=$(mktemp -d -t sipd-check-run.XXXXXX)
runlog=$workdir/make-run.log
pgid=""

# stop_group ends every process of the `make run` group: SIGTERM, then
# SIGKILL after 10 s; it waits until the group is empty.
stop_group() {
	[ -n "$pgid" ] || return 0
	kill -TERM -- "-$pgid" 2>/dev/null
	local i
	for i in $(seq 1 100); do
		pgrep -g "$pgid" >/dev/null 2>&1 || break
		sleep 0.1
	done
	if pgrep -g "$pgid" >/dev/null 2>&1; then
		log "process group $pgid still running 10s after SIGTERM; sending SIGKILL"
		kill -KILL -- "-$pgid" 2>/dev/null
		for i in $(seq 1 50); do
			pgrep -g "$pgid" >/dev/null 2>&1 || break
			sleep 0.1
		done
	fi
	wait "$pgid" 2>/dev/null
	if pgrep -g "$pgid" >/dev/null 2>&1; then
		log "processes left behind in group $pgid:"
		pgrep -a -g "$pgid" >&2
		pgid=""
		return 1
	fi
	pgid=""
	return 0
}

cleanup() {
	stop_group
	rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Build first, so the wait below measures start-up, not compilation.
if ! make build >"$workdir/build.log" 2>&1; then
	log "make build failed:"
	tail -n 40 "$workdir/build.log" >&2
	exit 1
fi

# setsid makes `make run` the leader of a new process group (its pid is
# the group id), so the whole tree can be stopped at once.
setsid make run >"$runlog" 2>&1 </dev/null &
pgid=$!
log "started make run (process group $pgid), waiting up to ${WAIT}s for OPTIONS 200 on $HOST:$PORT"

# probe sends one OPTIONS over transport $1 (u1 or t1) and succeeds on 200.
probe() {
	local lport=$((20000 + RANDOM % 20000))
	sipp -sf "$SCENARIO" -t "$1" -i "$HOST" -p "$lport" -mp $((lport + 1)) \
		-m 1 -l 1 -nostdin -timeout 3s -timeout_error -recv_timeout 2000 \
		"$HOST:$PORT" >"$workdir/probe-$1.log" 2>&1
}

udp_ok=0
tcp_ok=0
deadline=$((SECONDS + WAIT))
while [ "$SECONDS" -lt "$deadline" ]; do
	if ! pgrep -g "$pgid" >/dev/null 2>&1; then
		log "make run exited early"
		break
	fi
	[ "$udp_ok" = 1 ] || { probe u1 && udp_ok=1 && log "UDP: OPTIONS 200"; }
	[ "$tcp_ok" = 1 ] || { probe t1 && tcp_ok=1 && log "TCP: OPTIONS 200"; }
	[ "$udp_ok" = 1 ] && [ "$tcp_ok" = 1 ] && break
	sleep 0.5
done

status=0
if [ "$udp_ok" != 1 ] || [ "$tcp_ok" != 1 ]; then
	log "no OPTIONS 200 within ${WAIT}s (udp ok=$udp_ok, tcp ok=$tcp_ok)"
	log "---- make run output (last 40 lines) ----"
	tail -n 40 "$runlog" >&2
	status=1
fi

if ! stop_group; then
	status=1
fi
[ "$status" = 0 ] && log "ok: sipd answered over UDP and TCP and stopped cleanly"
exit "$status"
