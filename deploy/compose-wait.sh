#!/usr/bin/env bash
# compose-wait.sh PROJECT SECONDS: waits until every container of the
# compose project is running and, when it has a health check, healthy.
# Fails (printing the states) when SECONDS pass first.
set -euo pipefail
project=$1
limit=${2:-180}
deadline=$((SECONDS + limit))
while :; do
	states=$(docker ps -a --filter "label=com.docker.compose.project=$project" \
		--format '{{.Names}} {{.State}} {{.Status}}')
	pending=$(echo "$states" | awk '$2 != "running" || /\((health: starting|unhealthy)\)/' || true)
	if [ -n "$states" ] && [ -z "$pending" ]; then
		echo "compose-wait: $(echo "$states" | wc -l) containers of $project running and healthy"
		exit 0
	fi
	if [ $SECONDS -ge $deadline ]; then
		echo "compose-wait: $project not healthy after ${limit}s:" >&2
		echo "$states" >&2
		exit 1
	fi
	sleep 2
done
