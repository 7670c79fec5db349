# Soak of the all-in-one sipd, included by the top-level Makefile
# (-include bench/soak.mk). See docs/BENCHMARKS.md, "Soak".

.PHONY: soak
soak: build ## steady calls through sipd for SOAK_DURATION (default 600 s); fails if goroutines, heap or fds grow
	bench/soak.sh
