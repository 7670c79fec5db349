#!/usr/bin/env bash
# Smoke test of the two-site stack (make test-sites): brings up
# deploy/compose.sites.yaml, shows site b's NATS joined to site a's as a
# leaf node with each site's own JetStream domain, and each site's edge
# answering OPTIONS from the host; then brings it down leaving nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
COMPOSE=${COMPOSE:-docker-compose}
STANDINS=${STANDINS:-1}
PROJECT=${COMPOSE_PROJECT:-sipd-test}-sites
export COMPOSE_PROJECT_NAME=$PROJECT
export EDGE_A_SIP=127.0.0.1:15071 EDGE_B_SIP=127.0.0.1:15072 JAEGER_UI=127.0.0.1:16688
ARGS=(-f deploy/compose.sites.yaml)
[ "$STANDINS" = 1 ] && ARGS=(--env-file deploy/standins.env "${ARGS[@]}")
compose() { timeout 120 $COMPOSE "${ARGS[@]}" "$@"; }

cleanup() {
	local rc=$?
	set +e
	[ $rc -ne 0 ] && compose logs --no-color --tail 20 >&2
	compose down -v --remove-orphans >/dev/null 2>&1
	if [ -n "$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")" ]; then
		echo "FAIL: containers of $PROJECT left" >&2
		rc=1
	fi
	[ $rc -eq 0 ] && echo "test-sites: PASS" || echo "test-sites: FAIL" >&2
	exit $rc
}
trap cleanup EXIT

compose down -v --remove-orphans >/dev/null 2>&1 || true
compose up -d
deploy/compose-wait.sh "$PROJECT" 180

echo "=== site b's NATS is a leaf node of site a's"
leaf=""
for _ in $(seq 1 20); do
	leaf=$(compose exec -T nats-a wget -qO- http://127.0.0.1:8222/leafz | jq -r '.leafs[]?.name')
	[ "$leaf" = nats-b ] && break
	sleep 1
done
[ "$leaf" = nats-b ] || { echo "FAIL: no leaf connection from nats-b to nats-a" >&2; exit 1; }
for s in a b; do
	echo "nats-$s: JetStream domain $(compose exec -T "nats-$s" wget -qO- http://127.0.0.1:8222/jsz | jq -r '.config.domain')"
done

echo "=== each site's edge answers OPTIONS on its published port"
"${CACHE:-.cache/images}/sipd/sipctl" -timeout 5s health -sip "udp:$EDGE_A_SIP,udp:$EDGE_B_SIP"
