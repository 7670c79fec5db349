# sipd: the one entry point. `make help` lists the targets.

SHELL := /bin/bash
GO ?= go
BIN := bin
MODULES := allocator callcenter edge proto registrar replicator router services
PKGS := $(addsuffix /...,$(addprefix ./,$(MODULES)))
TOOLS := $(CURDIR)/.cache/bin
BUF_VERSION := v1.75.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
CONFIG ?= deploy/config/sipd.yaml

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: build
build: ## build every binary into bin/ (sipd, edge, registrar, router)
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./services/cmd/...

.PHONY: run
run: build ## build and run everything in one process (SIP on 5060 UDP+TCP)
	$(BIN)/sipd -config $(CONFIG)

.PHONY: test-deps
test-deps: ## install the Debian packages tests need (sip-tester, redis-server, baresip-core) when root
	@scripts/install-test-deps.sh

.PHONY: vet
vet: ## go vet every module
	$(GO) vet $(PKGS)

.PHONY: test-unit
test-unit: ## unit tests of every module, race detector on
	$(GO) test -race -count=1 -timeout 10m $$($(GO) list $(PKGS) | grep -v /services/e2e)

.PHONY: test-e2e
test-e2e: build ## end-to-end tests: the real binaries driven by sipp
	SIPD_BIN_DIR=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 20m -v ./services/e2e/...

.PHONY: test
test: test-deps vet proto-check test-unit test-e2e check-run ## everything CI runs
	@echo "make test: all passed"

.PHONY: check-run
check-run: build ## show `make run` answers OPTIONS on 127.0.0.1:5060 (UDP and TCP)
	scripts/check-run.sh

$(TOOLS)/buf:
	GOBIN=$(TOOLS) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(TOOLS)/protoc-gen-go-grpc:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

.PHONY: proto
proto: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc ## lint the .proto files and regenerate Go code
	cd proto && PATH=$(TOOLS):$$PATH buf lint
	cd proto && rm -rf gen && PATH=$(TOOLS):$$PATH buf generate

.PHONY: proto-check
proto-check: proto ## fail when the committed generated code is stale
	@git diff --exit-code --stat -- proto/gen || { echo "proto/gen is stale: run make proto and commit" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- proto/gen)" || { echo "proto/gen has uncommitted files: run make proto and commit" >&2; git status --porcelain -- proto/gen; exit 1; }

.PHONY: tidy
tidy: ## go mod tidy in every module
	for m in $(MODULES); do (cd $$m && $(GO) mod tidy); done

.PHONY: clean
clean: ## remove built binaries
	rm -rf $(BIN)

-include bench/bench.mk
-include bench/tcp.mk
-include bench/soak.mk
-include deploy/deploy.mk
