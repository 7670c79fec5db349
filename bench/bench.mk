# SIP benchmark targets, included by the top-level Makefile. The driver is
# the Go program in bench/ (its own module, standard library only); see
# docs/BENCHMARKS.md for what it measures and how to read the report.

BENCH_OUT ?= .cache/bench/bench-sip.md
# Extra driver flags, e.g. BENCH_FLAGS='-rates 500,1000 -keep'.
BENCH_FLAGS ?=
BENCH_RUN = cd bench && GOWORK=off $(GO) run . -bin $(CURDIR)/$(BIN) -benchdir $(CURDIR)/bench

.PHONY: bench-deps
bench-deps: ## install sipp, Kamailio and gcc for the benchmark when missing (as root)
	@missing=""; \
	command -v sipp >/dev/null || missing="$$missing sip-tester"; \
	command -v kamailio >/dev/null || missing="$$missing kamailio"; \
	command -v gcc >/dev/null || missing="$$missing gcc libc6-dev"; \
	command -v taskset >/dev/null || missing="$$missing util-linux"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
		else \
			echo "bench-sip needs:$$missing (apt-get install them as root)" >&2; exit 1; \
		fi; \
	fi

.PHONY: bench-sip
bench-sip: build bench-deps ## SIP proxy benchmark: edge vs Kamailio vs full chain per rate, loader ceiling, memory per call (~15 min)
	@mkdir -p $(dir $(BENCH_OUT))
	$(BENCH_RUN) -out $(CURDIR)/$(BENCH_OUT) $(BENCH_FLAGS)

.PHONY: bench-sip-quick
bench-sip-quick: build bench-deps ## smoke check of bench-sip: 500 and 1000 calls/s, 5 s steps, no memory test (~2 min)
	@mkdir -p $(dir $(BENCH_OUT))
	$(BENCH_RUN) -rates 500,1000 -step 5s -warmup 1s -ceiling-rates 2000 -hold 0 -out $(CURDIR)/$(BENCH_OUT:.md=-quick.md) $(BENCH_FLAGS)
