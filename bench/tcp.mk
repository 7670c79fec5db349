# TCP connection-scale benchmark, included by the top-level Makefile
# (-include bench/tcp.mk). See docs/BENCHMARKS.md, "TCP connections".

.PHONY: bench-tcp
bench-tcp: build ## idle registered TCP connections: one edge near the 20k fd cap, then 100k over 6 edges (~12 min)
	N=19000 EDGES=1 TOOLS=1 bench/tcp-scale.sh
	N=100000 EDGES=6 TOOLS=6 RATE=800 bench/tcp-scale.sh

.PHONY: bench-tcp-quick
bench-tcp-quick: build ## idle TCP connections: 2000 on one edge (~3 min)
	N=2000 EDGES=1 TOOLS=1 HOLD=180 bench/tcp-scale.sh
