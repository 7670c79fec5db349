#!/usr/bin/env bash
# tcp-scale.sh: what an idle registered TCP connection costs the edge.
#
# Starts a registrar, a router and EDGES edge processes sharing one TCP
# listening address (SO_REUSEPORT, edge.transport.tcp_reuseport), then TOOLS
# sipd-tcpload processes that open N connections in all (source addresses
# spread over 127.0.0.0/8), register each and hold them idle with CRLF
# keep-alives. Once every connection is up it waits for each edge's next
# garbage collection (at most GC_WAIT seconds), samples, and reports per
# connection: the edges' heap + goroutine stacks delta (runtime metrics),
# their resident set delta, and the kernel's Slab delta (/proc/meminfo; both
# ends of each loopback connection are in this kernel). Every process it
# starts is stopped on exit; every wait is bounded; traffic stays on
# 127.0.0.0/8.
#
# Usage: bench/tcp-scale.sh   (env: N EDGES TOOLS HOLD RATE BIN OUT GC_WAIT MAX_CONNS WAIT_IDLE)
set -euo pipefail

N=${N:-19000}
EDGES=${EDGES:-1}
TOOLS=${TOOLS:-1}
RATE=${RATE:-1500}            # new connections a second per tool
HOLD=${HOLD:-240}             # seconds each tool holds its connections
GC_WAIT=${GC_WAIT:-150}       # seconds to wait for an edge's GC after the ramp
MAX_CONNS=${MAX_CONNS:-19800} # edge.transport.max_connections per edge
BIN=${BIN:-bin}
OUT=${OUT:-.cache/bench/tcp-scale-$EDGES-$N.txt}
SIP_PORT=${SIP_PORT:-5090}
BASE_METRICS=${BASE_METRICS:-9270}

for b in registrar router edge sipd-tcpload; do
	[[ -x $BIN/$b ]] || { echo "tcp-scale: $BIN/$b missing (make build)" >&2; exit 2; }
done
(( N / TOOLS < 19500 )) || { echo "tcp-scale: N/TOOLS must stay under the 20000 open-file cap" >&2; exit 2; }
(( N <= EDGES * MAX_CONNS )) || { echo "tcp-scale: N ($N) > EDGES x MAX_CONNS" >&2; exit 2; }

# Do not measure while the SIP rate benchmark loads the machine (bounded wait).
for _ in $(seq 1 "${WAIT_IDLE:-60}"); do
	pgrep -f 'sipp .*-i 127\.0\.0\.1' >/dev/null || pgrep -x kamailio >/dev/null || break
	echo "tcp-scale: sipp or kamailio running; waiting" >&2
	sleep 10
done

dir=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do
		for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null || true
	done
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

metric() { # port name
	local body
	body=$(curl -sf --max-time 5 "http://127.0.0.1:$1/metrics") || { echo 0; return; }
	awk -v n="$2" '$1==n{v=$2+0} END{printf "%.0f\n", v}' <<<"$body"
}
wait_healthy() { # port
	for _ in $(seq 1 100); do curl -sf --max-time 1 "http://127.0.0.1:$1/healthz" >/dev/null && return 0; sleep 0.1; done
	echo "tcp-scale: nothing healthy on $1" >&2; return 1
}
slab() { awk '$1=="Slab:"{print $2*1024}' /proc/meminfo; }
tcpmem() { awk '$1=="TCP:"{for(i=2;i<NF;i++) if($i=="mem") print $(i+1)*4096}' /proc/net/sockstat; }

cat >"$dir/registrar.yaml" <<YAML
log: {level: warn}
telemetry: {metrics_listen: "127.0.0.1:$((BASE_METRICS-2))"}
grpc: {registrar_listen: "127.0.0.1:7091"}
YAML
cat >"$dir/router.yaml" <<YAML
log: {level: warn}
telemetry: {metrics_listen: "127.0.0.1:$((BASE_METRICS-1))"}
grpc: {router_listen: "127.0.0.1:7092", registrar_address: "127.0.0.1:7091"}
YAML
"$BIN/registrar" -config "$dir/registrar.yaml" 2>"$dir/registrar.log" & pids+=($!)
"$BIN/router" -config "$dir/router.yaml" 2>"$dir/router.log" & pids+=($!)
wait_healthy $((BASE_METRICS-2)); wait_healthy $((BASE_METRICS-1))

edge_pids=()
for i in $(seq 0 $((EDGES-1))); do
	cat >"$dir/edge$i.yaml" <<YAML
log: {level: warn}
telemetry: {metrics_listen: "127.0.0.1:$((BASE_METRICS+i))"}
grpc: {registrar_address: "127.0.0.1:7091", router_address: "127.0.0.1:7092"}
edge:
  listen: ["tcp:127.0.0.1:$SIP_PORT"]
  transport: {tcp_reuseport: true, max_connections: $MAX_CONNS, tcp_idle_timeout: 10m}
YAML
	"$BIN/edge" -config "$dir/edge$i.yaml" 2>"$dir/edge$i.log" & p=$!; pids+=($p); edge_pids+=($p)
	wait_healthy $((BASE_METRICS+i))
done
sleep 2

declare -A heap0 stack0 rss0 fds0 gc0
for i in $(seq 0 $((EDGES-1))); do
	port=$((BASE_METRICS+i))
	heap0[$i]=$(metric $port go_memstats_heap_inuse_bytes)
	stack0[$i]=$(metric $port go_memstats_stack_inuse_bytes)
	rss0[$i]=$(metric $port process_resident_memory_bytes)
	fds0[$i]=$(ls /proc/${edge_pids[$i]}/fd | wc -l)
done
slab0=$(slab); tcpmem0=$(tcpmem)

per=$(( (N + TOOLS - 1) / TOOLS ))
left=$N
tool_out=()
for t in $(seq 0 $((TOOLS-1))); do
	n=$(( left < per ? left : per )); left=$((left-n))
	(( n > 0 )) || break
	"$BIN/sipd-tcpload" -target "127.0.0.1:$SIP_PORT" -n "$n" -rate "$RATE" -per-ip 64 \
		-src-offset $((t * (per/64 + 1))) -user-offset $((t * per)) -hold "${HOLD}s" -keepalive 30s \
		>"$dir/tool$t.out" 2>"$dir/tool$t.err" & pids+=($!)
	tool_out+=("$dir/tool$t.out")
done

ramp_start=$(date +%s)
for _ in $(seq 1 600); do
	ready=$(cat "${tool_out[@]}" | grep -c '^ready' || true)
	(( ready == ${#tool_out[@]} )) && break
	sleep 1
done
ramp=$(( $(date +%s) - ramp_start ))
registered=$(cat "${tool_out[@]}" | awk -F'[ =]' '/^ready/{s+=$3} END{print s+0}')

for i in $(seq 0 $((EDGES-1))); do gc0[$i]=$(metric $((BASE_METRICS+i)) go_gc_duration_seconds_count); done
waited=0
for _ in $(seq 1 "$GC_WAIT"); do
	all=1
	for i in $(seq 0 $((EDGES-1))); do
		(( $(metric $((BASE_METRICS+i)) go_gc_duration_seconds_count) > ${gc0[$i]} )) || all=0
	done
	(( all )) && break
	sleep 1; waited=$((waited+1))
done
sleep 2

dheap=0; dstack=0; drss=0; conns=0
rows=""
for i in $(seq 0 $((EDGES-1))); do
	port=$((BASE_METRICS+i))
	h=$(( $(metric $port go_memstats_heap_inuse_bytes) - heap0[$i] ))
	s=$(( $(metric $port go_memstats_stack_inuse_bytes) - stack0[$i] ))
	r=$(( $(metric $port process_resident_memory_bytes) - rss0[$i] ))
	c=$(( $(ls /proc/${edge_pids[$i]}/fd | wc -l) - fds0[$i] ))
	dheap=$((dheap+h)); dstack=$((dstack+s)); drss=$((drss+r)); conns=$((conns+c))
	rows+=$(printf '| %d | %d | %d | %d | %d | %d |' "$i" "$c" "$((h/1024))" "$((s/1024))" "$((r/1024))" "$(( c>0 ? (h+s)/c : 0 ))")$'\n'
done
dslab=$(( $(slab) - slab0 )); dtcpmem=$(( $(tcpmem) - tcpmem0 ))
established=$(ss -Htn state established "( sport = :$SIP_PORT )" | wc -l)

mkdir -p "$(dirname "$OUT")"
{
	echo "tcp-scale: N=$N EDGES=$EDGES TOOLS=$TOOLS RATE=$RATE/s/tool HOLD=${HOLD}s"
	echo "registered=$registered (tools' ready lines) edge_conns=$conns (fds over baseline) established=$established ramp=${ramp}s gc_wait=${waited}s"
	echo
	echo "| edge | conns | heap delta KiB | stack delta KiB | RSS delta KiB | heap+stack B/conn |"
	echo "|---|---|---|---|---|---|"
	printf '%s' "$rows"
	echo
	if (( conns > 0 )); then
		echo "per connection: heap $((dheap/conns)) B + stacks $((dstack/conns)) B = $(((dheap+dstack)/conns)) B in the edge's Go heap and stacks; RSS $((drss/conns)) B"
		echo "kernel: Slab delta $((dslab/conns)) B per connection (both loopback ends: ~$((dslab/conns/2)) B per socket); TCP buffer memory (sockstat mem) delta $((dtcpmem/conns)) B per connection"
	fi
} | tee "$OUT"

for t in "${tool_out[@]}"; do :; done
# Let the tools finish their hold and print their summaries (bounded).
for _ in $(seq 1 $((HOLD + 60))); do
	done_n=$(cat "${tool_out[@]}" | grep -c '^done' || true)
	(( done_n == ${#tool_out[@]} )) && break
	sleep 1
done
grep -h '^done' "${tool_out[@]}" | tee -a "$OUT" || true
