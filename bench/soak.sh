#!/usr/bin/env bash
# Soak: the all-in-one sipd under a steady, moderate call rate for
# SOAK_DURATION seconds. A sipp UAS (bob) and the caller (alice) register,
# then a sipp UAC calls bob at SOAK_RATE calls/s through the edge. Every
# SOAK_INTERVAL seconds the sipd process is sampled: go_goroutines and
# go_memstats_heap_inuse_bytes from /metrics, open fds (/proc/PID/fd) and
# RSS. It fails when any call failed, or when the last third's averages
# exceed the first third's by more than 20% heap, 50 goroutines or 20 fds.
# Samples in the first SOAK_WARMUP seconds (live transactions and dialogs
# filling up to their steady number) are shown but not compared.
set -euo pipefail

DURATION=${SOAK_DURATION:-600}   # seconds of calls
RATE=${SOAK_RATE:-200}           # calls a second
INTERVAL=${SOAK_INTERVAL:-30}    # seconds between samples
WARMUP=${SOAK_WARMUP:-60}        # seconds of samples left out of the comparison
BIN=${BIN:-bin}
SCEN=${SCEN:-services/e2e/scenarios}
OUT=${OUT:-.cache/bench/soak.txt}
SIP_PORT=${SIP_PORT:-5190}
METRICS_PORT=${METRICS_PORT:-9190}
HEAP_MARGIN=${HEAP_MARGIN:-20}   # percent
GOR_MARGIN=${GOR_MARGIN:-50}
FD_MARGIN=${FD_MARGIN:-20}

[[ -x $BIN/sipd ]] || { echo "soak: $BIN/sipd missing (make build)" >&2; exit 2; }
command -v sipp >/dev/null || { echo "soak: sipp not found" >&2; exit 2; }
(( DURATION - WARMUP >= 3 * INTERVAL )) || { echo "soak: SOAK_DURATION must cover at least 3 samples" >&2; exit 2; }

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

cat >"$dir/sipd.yaml" <<YAML
log: {level: warn, format: text}
telemetry: {metrics_listen: 127.0.0.1:$METRICS_PORT, sample_ratio: 0}
nats: {listen: 127.0.0.1:$((SIP_PORT + 3))}
grpc:
  registrar_listen: 127.0.0.1:$((SIP_PORT + 1))
  router_listen: 127.0.0.1:$((SIP_PORT + 2))
  registrar_address: 127.0.0.1:$((SIP_PORT + 1))
  router_address: 127.0.0.1:$((SIP_PORT + 2))
edge:
  listen: [udp:127.0.0.1:$SIP_PORT]
YAML

"$BIN/sipd" -config "$dir/sipd.yaml" >"$dir/sipd.log" 2>&1 &
sipd=$!
pids+=("$sipd")
for _ in $(seq 1 100); do
	curl -sf --max-time 1 "http://127.0.0.1:$METRICS_PORT/metrics" >/dev/null && break
	kill -0 "$sipd" 2>/dev/null || { cat "$dir/sipd.log" >&2; exit 1; }
	sleep 0.1
done

edge=127.0.0.1:$SIP_PORT
uas_port=$((SIP_PORT + 10))
uac_port=$((SIP_PORT + 11))
calls=$((DURATION * RATE))

sipp -sf "$SCEN/uas.xml" -i 127.0.0.1 -p "$uas_port" -mp $((SIP_PORT + 30)) -m "$calls" \
	-nostdin -trace_stat -stf "$dir/uas.csv" -fd 5 -timeout $((DURATION + 120))s >"$dir/uas.out" 2>&1 &
pids+=("$!")
sleep 1

register() { # user contact
	sipp -sf "$SCEN/register.xml" -i 127.0.0.1 -p $((SIP_PORT + 12)) -mp $((SIP_PORT + 50)) \
		-key user "$1" -key domain 127.0.0.1 -key contact "$2" -key expires 7200 \
		-m 1 -l 1 -nostdin -timeout 10s -timeout_error -recv_timeout 5000 "$edge" >"$dir/reg-$1.out" 2>&1 \
		|| { echo "soak: REGISTER $1 failed" >&2; tail -n 20 "$dir/reg-$1.out" "$dir/sipd.log" >&2; exit 1; }
}
register bob "sip:bob@127.0.0.1:$uas_port;transport=udp"
register alice "sip:alice@127.0.0.1:$uac_port;transport=udp"

sipp -sf "$SCEN/uac.xml" -i 127.0.0.1 -p "$uac_port" -mp $((SIP_PORT + 40)) \
	-s bob -key caller alice -key domain 127.0.0.1 \
	-m "$calls" -r "$RATE" -l $((RATE * 10)) -recv_timeout 10000 -timeout $((DURATION + 60))s \
	-nostdin -trace_stat -stf "$dir/uac.csv" -fd 5 "$edge" >"$dir/uac.out" 2>&1 &
uac=$!
pids+=("$uac")

metric() { # name
	curl -sf --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics" |
		awk -v n="$1" '$1==n{v=$2+0} END{printf "%.0f\n", v}'
}

mkdir -p "$(dirname "$OUT")"
samples="$dir/samples"
: >"$samples"
printf '%6s %10s %14s %6s %10s\n' t_s goroutines heap_inuse_B fds rss_kB | tee "$OUT"
start=$(date +%s)
next=$INTERVAL
while kill -0 "$uac" 2>/dev/null && (( next <= DURATION )); do
	sleep $(( start + next - $(date +%s) > 0 ? start + next - $(date +%s) : 0 ))
	kill -0 "$sipd" 2>/dev/null || { echo "soak: sipd exited" >&2; exit 1; }
	g=$(metric go_goroutines)
	h=$(metric go_memstats_heap_inuse_bytes)
	f=$(ls "/proc/$sipd/fd" | wc -l)
	r=$(awk '/^VmRSS/{print $2}' "/proc/$sipd/status")
	printf '%6d %10d %14d %6d %10d\n' "$next" "$g" "$h" "$f" "$r" | tee -a "$OUT"
	(( next > WARMUP )) && echo "$g $h $f $r" >>"$samples"
	next=$((next + INTERVAL))
done
wait "$uac" || true

stat() { # csv column -> value of the last line
	awk -F';' -v c="$2" 'NR==1{for(i=1;i<=NF;i++) if($i==c) k=i} END{print $k+0}' "$1"
}
ok=$(stat "$dir/uac.csv" 'SuccessfulCall(C)')
failed=$(stat "$dir/uac.csv" 'FailedCall(C)')
echo "calls: $ok successful, $failed failed of $calls" | tee -a "$OUT"

verdict=$(awk -v hm="$HEAP_MARGIN" -v gm="$GOR_MARGIN" -v fm="$FD_MARGIN" '
	{ g[NR]=$1; h[NR]=$2; f[NR]=$3; r[NR]=$4 }
	END {
		n=NR; k=int(n/3); if (k<1) { print "too few samples"; exit }
		for (i=1;i<=k;i++) { g1+=g[i]; h1+=h[i]; f1+=f[i]; r1+=r[i] }
		for (i=n-k+1;i<=n;i++) { g3+=g[i]; h3+=h[i]; f3+=f[i]; r3+=r[i] }
		g1/=k; h1/=k; f1/=k; r1/=k; g3/=k; h3/=k; f3/=k; r3/=k
		printf "first third: goroutines %.0f heap %.0f fds %.0f rss_kB %.0f\n", g1, h1, f1, r1
		printf "last third:  goroutines %.0f heap %.0f fds %.0f rss_kB %.0f\n", g3, h3, f3, r3
		bad=""
		if (h3 > h1*(1+hm/100)) bad=bad " heap"
		if (g3 > g1+gm) bad=bad " goroutines"
		if (f3 > f1+fm) bad=bad " fds"
		print (bad=="" ? "PASS" : "FAIL:" bad)
	}' "$samples")
echo "$verdict" | tee -a "$OUT"
[[ $verdict == *PASS* && $failed -eq 0 && $ok -gt 0 ]] || { echo "soak: failed" >&2; exit 1; }
