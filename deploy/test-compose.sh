#!/usr/bin/env bash
# The compose end-to-end test (make test-compose): brings up the one-site
# stack from deploy/compose.yaml and shows, with sipp UAs running inside
# the stack's network,
#   1. a UA registered through edge 1 is called through edge 2 (0 failed calls);
#   2. Jaeger has the call's trace, found by Call-ID, with spans of the
#      edge, the router and the registrar;
#   3. sipctl lists the registration;
#   4. a killed and restarted registrar still has the bindings (Redis);
#   5. with the registrar scaled to 3, registrations and calls succeed;
#   6. sipctl removing the contact makes the next call get 480;
# and brings the stack down leaving no container, network or volume.
# Expects the images of `make images`. Every step is bounded.
set -euo pipefail

cd "$(dirname "$0")/.."
COMPOSE=${COMPOSE:-docker-compose}
STANDINS=${STANDINS:-1}
PROJECT=${COMPOSE_PROJECT:-sipd-test}
PREFIX=${SIPD_IMAGE_PREFIX:-sipd/}
TAG=${SIPD_IMAGE_TAG:-dev}
NET=${PROJECT}_sipd
EDGE1=10.210.89.11
EDGE2=10.210.89.12
DOMAIN=sipd.test
UA=10.210.89.21     # bob's UA (sipp UAS); outside the range compose hands out
CALLER=10.210.89.31 # alice's UA (sipp UAC)
WORK=$(mktemp -d)
RUN=$(date +%s)-$$
STEP_TIMEOUT=${STEP_TIMEOUT:-90}
export COMPOSE_PROJECT_NAME=$PROJECT
# The stack's host ports are moved off the defaults, so that the test runs
# beside a `make up` stack.
export EDGE1_SIP=127.0.0.1:15061 EDGE2_SIP=127.0.0.1:15062
export EDGE1_METRICS=127.0.0.1:19161 EDGE2_METRICS=127.0.0.1:19162
export JAEGER_UI=127.0.0.1:16687
JAEGER=http://$JAEGER_UI

COMPOSE_ARGS=(-f deploy/compose.yaml)
[ "$STANDINS" = 1 ] && COMPOSE_ARGS=(--env-file deploy/standins.env "${COMPOSE_ARGS[@]}")
compose() { timeout "$STEP_TIMEOUT" $COMPOSE "${COMPOSE_ARGS[@]}" "$@"; }
step() { echo; echo "=== $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

cleanup() {
	local rc=$?
	set +e
	if [ $rc -ne 0 ]; then
		echo "--- logs (last 30 lines per service)" >&2
		compose logs --no-color --tail 30 >&2
	fi
	docker ps -aq --filter "label=sipd-test=$PROJECT" | xargs -r docker rm -f >/dev/null
	rm -rf "$WORK"
	compose down -v --remove-orphans >/dev/null 2>&1
	left=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT"; docker network ls -q --filter "label=com.docker.compose.project=$PROJECT"; docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT")
	if [ -n "$left" ]; then
		echo "FAIL: left behind: $left" >&2
		rc=1
	else
		echo "stack down: no container, network or volume of $PROJECT left"
	fi
	if [ $rc -eq 0 ]; then echo; echo "test-compose: PASS"; else echo "test-compose: FAIL (exit $rc)" >&2; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# sipp NAME NETWORK IP ARGS...: one sipp UA, in the foreground, attached to
# NETWORK (the stack's network, or "container:NAME" to share a UA's
# address); sipp's exit code is 0 only when every call succeeded. The host's
# PID namespace gives every run its own PID, which sipp puts in Via branches
# and tags: with PID 1 in every container, a new INVITE would look like a
# retransmission of the previous run's.
sipp() {
	local name=$1 net=$2 ip=$3
	shift 3
	local netargs=(--network "$net")
	[ "${net#container:}" = "$net" ] && netargs+=(--ip "$ip")
	local out="$WORK/$name.out"
	timeout "$STEP_TIMEOUT" docker run --rm --name "$PROJECT-$name" --label "sipd-test=$PROJECT" \
		"${netargs[@]}" --pid host \
		-v "$PWD/services/e2e/scenarios:/scenarios:ro" -v "$PWD/deploy/test/scenarios:/test:ro" \
		"${PREFIX}sipp:$TAG" -i "$ip" -nostdin -timeout 30s -timeout_error -recv_timeout 5000 \
		-trace_screen -screen_file /dev/stdout "$@" >"$out" 2>&1 || {
		cat "$out" >&2
		return 1
	}
	grep -E "Successful call|Failed call" "$out" | head -2 || true
}

# register USER EDGE EXPIRES: REGISTER from the UA's own address (sharing
# the UAS container's network), binding sip:USER@UA:5070, as a phone does.
# From another address the registrar would take the UA for one behind NAT
# and deliver calls to the REGISTER's source instead.
register() {
	sipp "reg-$1-$RANDOM" "container:$PROJECT-uas" "$UA" -sf /scenarios/register.xml "$2:5060" -p 5071 -m 1 \
		-key user "$1" -key domain "$DOMAIN" -key contact "sip:$1@$UA:5070" -key expires "$3"
}

# call CALLEE EDGE COUNT CALLID-PREFIX [SCENARIO]: alice calls from
# $CALLER; Call-IDs are CALLID-PREFIX-N@$CALLER.
call() {
	sipp "uac-$RANDOM" "$NET" "$CALLER" -sf "${5:-/scenarios/uac.xml}" "$2:5060" -p 5072 -m "$3" -r 5 \
		-s "$1" -key caller alice -key domain "$DOMAIN" -cid_str "$4-%u@%s"
}

sipctl() { # sipctl ARGS...: sipctl inside a registrar container
	compose exec -T registrar /usr/local/bin/sipctl -registrar 127.0.0.1:7001 -router router:7002 "$@"
}

wait_healthy() { deploy/compose-wait.sh "$PROJECT" "${1:-180}"; }

for tool in docker jq curl timeout; do
	command -v "$tool" >/dev/null || { echo "test-compose: $tool is needed" >&2; exit 1; }
done

step "bring the stack up ($PROJECT, stand-ins: $STANDINS)"
# Leftovers of an interrupted run go first.
docker ps -aq --filter "label=sipd-test=$PROJECT" | xargs -r docker rm -f >/dev/null
compose down -v --remove-orphans >/dev/null 2>&1 || true
compose up -d
wait_healthy 180
compose ps

step "start bob's UA (sipp UAS) at $UA:5070"
docker run -d --name "$PROJECT-uas" --label "sipd-test=$PROJECT" --network "$NET" --ip "$UA" --pid host \
	-v "$PWD/services/e2e/scenarios:/scenarios:ro" "${PREFIX}sipp:$TAG" \
	-sf /scenarios/uas.xml -i "$UA" -p 5070 -nostdin >/dev/null

step "register bob through edge 1 ($EDGE1)"
register bob "$EDGE1" 3600

step "sipctl reg list shows bob"
out=$(sipctl reg list)
echo "$out"
grep -q "sip:bob@$DOMAIN" <<<"$out" || fail "sipctl reg list does not show bob"
out=$(sipctl -o json reg list)
jq -e --arg aor "sip:bob@$DOMAIN" '.records[] | select(.aor == $aor)' <<<"$out" >/dev/null ||
	fail "sipctl -o json reg list does not show bob: $out"

step "alice calls bob through edge 2 ($EDGE2): 5 calls, 0 failed"
CID=compose-$RUN
call bob "$EDGE2" 5 "$CID"

step "Jaeger has the trace of call $CID-1@$CALLER with edge, router and registrar spans"
callid="$CID-1@$CALLER"
tags=$(jq -rn --arg c "$callid" '{"sip.call_id": $c} | tojson | @uri')
want='["sipd-edge","sipd-registrar","sipd-router"]'
found=false
for _ in $(seq 1 30); do
	traces=$(curl -fsS --max-time 5 "$JAEGER/api/traces?service=sipd-edge&tags=$tags&limit=20" || true)
	if jq -e --argjson want "$want" '[.data[]?.processes[].serviceName] | unique | contains($want)' <<<"$traces" >/dev/null 2>&1; then
		found=true
		break
	fi
	sleep 1
done
# One trace per SIP transaction; each span as service: operation.
jq -r '.data[]? | . as $t | "trace \(.traceID) (\(.spans | length) spans)",
	(.spans | sort_by(.startTime)[] | "  \($t.processes[.processID].serviceName): \(.operationName)" +
		(if any(.tags[]; .key == "sip.call_id") then "  sip.call_id=" + (.tags[] | select(.key == "sip.call_id") | .value) else "" end))' <<<"$traces" || true
$found || fail "no trace of $callid with spans of sipd-edge, sipd-router and sipd-registrar in Jaeger"

step "kill the registrar and start it again: bob's binding is still there"
compose kill registrar
compose up -d registrar
wait_healthy 120
out=$(sipctl reg show "bob@$DOMAIN")
echo "$out"
grep -q "sip:bob@$UA:5070" <<<"$out" || fail "bob's binding is gone after the registrar restarted"
call bob "$EDGE2" 2 "$CID-restart"

step "scale the registrar to 3: registrations and calls still succeed"
compose up -d --scale registrar=3 --no-recreate
wait_healthy 120
n=$(docker ps -q --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=registrar" | wc -l)
[ "$n" = 3 ] || fail "$n registrar containers, want 3"
echo "registrar replicas: $n; each one sees bob's binding (shared Redis):"
for i in 1 2 3; do
	out=$(compose exec -T --index "$i" registrar /usr/local/bin/sipctl -o json reg show "bob@$DOMAIN")
	jq -e '.status == "LOOKUP_STATUS_FOUND"' <<<"$out" >/dev/null || fail "registrar replica $i does not see bob: $out"
	echo "  registrar #$i: $(jq -r '.status + " " + (.bindings[0].uri)' <<<"$out")"
done
register bob "$EDGE2" 3600
call bob "$EDGE1" 5 "$CID-scaled"
call bob "$EDGE2" 5 "$CID-scaled2"

step "sipctl reg rm removes bob's contact; the next call gets 480 (uac_480.xml: a success is a 480)"
sipctl reg rm "bob@$DOMAIN" "sip:bob@$UA:5070"
sipctl reg show "bob@$DOMAIN"
call bob "$EDGE2" 1 "$CID-480" /test/uac_480.xml

step "the host reaches the edges on their published ports (sipctl health: OPTIONS and /healthz)"
"${CACHE:-.cache/images}/sipd/sipctl" -timeout 5s health -sip "udp:$EDGE1_SIP,udp:$EDGE2_SIP" \
	-http "http://$EDGE1_METRICS/healthz,http://$EDGE2_METRICS/healthz"

step "statistics (sipctl stats) of edge 2"
sipctl stats -metrics "http://$EDGE2:9061/metrics" | grep -E "sipd_edge_(requests|responses)_total" || true

step "bring the stack down"
