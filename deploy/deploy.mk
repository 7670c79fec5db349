# sipd under docker compose: images, the one-site stack, and its end-to-end
# test. Included by the top-level Makefile; docs/deployment.md explains.

# docker compose (v2 plugin) when there, else docker-compose (v1).
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
COMPOSE_PROJECT ?= sipd
# STANDINS=1 (the default) runs the local NATS, Redis and Jaeger stand-ins
# that `make images` builds; STANDINS=0 runs their official images.
STANDINS ?= 1
# PROFILES=monitoring adds Prometheus and Grafana (official images).
PROFILES ?=
SIPD_COMPOSE = COMPOSE_PROJECT_NAME=$(COMPOSE_PROJECT) $(if $(PROFILES),COMPOSE_PROFILES=$(PROFILES)) \
	$(COMPOSE) $(if $(filter 1,$(STANDINS)),--env-file deploy/standins.env) -f deploy/compose.yaml

.PHONY: images
images: ## build the container images (sipd's services, and stand-ins for NATS, Redis, Jaeger, sipp); pulls nothing
	deploy/docker/build-images.sh $(if $(filter 1,$(STANDINS)),standins)

.PHONY: up
up: ## start the one-site compose stack (two edges, registrar, router, NATS, Redis, Jaeger) and wait until healthy
	$(SIPD_COMPOSE) up -d
	deploy/compose-wait.sh $(COMPOSE_PROJECT) 180

.PHONY: down
down: ## stop the compose stack and remove its containers, network and volumes
	$(SIPD_COMPOSE) down -v --remove-orphans

.PHONY: test-compose
test-compose: images ## compose end-to-end test: sipp calls across two edges, Jaeger traces, registrar restart and scaling, sipctl
	COMPOSE="$(COMPOSE)" STANDINS=$(STANDINS) deploy/test-compose.sh

SITES_COMPOSE = COMPOSE_PROJECT_NAME=$(COMPOSE_PROJECT)-sites \
	$(COMPOSE) $(if $(filter 1,$(STANDINS)),--env-file deploy/standins.env) -f deploy/compose.sites.yaml

.PHONY: up-sites
up-sites: ## start the two-site compose stack (per site: edge, registrar, router, Redis, NATS; NATS joined as leaf nodes)
	$(SITES_COMPOSE) up -d
	deploy/compose-wait.sh $(COMPOSE_PROJECT)-sites 180

.PHONY: down-sites
down-sites: ## stop the two-site stack and remove its containers, networks and volumes
	$(SITES_COMPOSE) down -v --remove-orphans

.PHONY: test-sites
test-sites: images ## smoke test of the two-site stack: NATS leaf connection, JetStream domains, both edges answer
	COMPOSE="$(COMPOSE)" STANDINS=$(STANDINS) deploy/test-sites.sh
