#!/usr/bin/env bash
# Builds sipd's container images without pulling anything: static Go
# binaries copied into empty (FROM scratch) images.
#
#   build-images.sh            sipd/edge, sipd/registrar, sipd/router
#   build-images.sh standins   also local stand-ins for NATS, Redis and
#                              Jaeger, and sipd/sipp for the compose test
#
# Environment: IMAGE_PREFIX (default sipd/), IMAGE_TAG (default dev),
# CACHE (build outputs, default .cache/images), NATS_VERSION and
# JAEGER_VERSION (Go module versions of the stand-ins), GOFLAGS_P (go build
# -p, default 2). Run from the repository root (make images does).
set -euo pipefail

PREFIX=${IMAGE_PREFIX:-sipd/}
TAG=${IMAGE_TAG:-dev}
CACHE=${CACHE:-.cache/images}
NATS_VERSION=${NATS_VERSION:-v2.15.2}
# Jaeger v2 binaries are tagged v1.x in the Go module: v1.76.0 is Jaeger 2.13.0.
JAEGER_VERSION=${JAEGER_VERSION:-v1.76.0}
P=${GOFLAGS_P:-2}
GO=${GO:-go}
DOCKERFILES=$(cd "$(dirname "$0")" && pwd)

log() { echo "build-images: $*" >&2; }

# gobuild OUT PKG...: a static, stripped binary.
gobuild() {
	local out=$1
	shift
	CGO_ENABLED=0 "$GO" build -p "$P" -trimpath -ldflags '-s -w' -o "$out" "$@"
}

# image NAME CONTEXT: docker build with the Dockerfile of NAME. Nothing is
# pulled: every Dockerfile starts FROM scratch.
image() {
	local name=$1 ctx=$2
	log "image ${PREFIX}${name}:${TAG}"
	# The legacy builder's deprecation notice is dropped; errors are kept.
	docker build -q -t "${PREFIX}${name}:${TAG}" -f "$DOCKERFILES/$name.Dockerfile" "$ctx" 2>&1 >/dev/null |
		{ grep -v -e DEPRECATED -e 'legacy builder' -e 'buildx' -e '^ *$' >&2 || true; }
	return "${PIPESTATUS[0]}"
}

services() {
	local ctx=$CACHE/sipd
	mkdir -p "$ctx"
	log "go build edge registrar router sipctl (static)"
	gobuild "$ctx/" ./services/cmd/edge ./services/cmd/registrar ./services/cmd/router ./services/cmd/sipctl
	for s in edge registrar router; do
		image "$s" "$ctx"
	done
}

# module_src MODULE VERSION DIR: a writable copy of a module's source, so it
# builds as its own main module with its own go.mod and go.sum (outside
# sipd's workspace). The download is verified like any module download.
module_src() {
	local mod=$1 ver=$2 dir=$3
	if [ -f "$dir/.complete" ]; then
		return
	fi
	rm -rf "$dir"
	mkdir -p "$(dirname "$dir")"
	local src
	src=$(cd "$CACHE" && GOWORK=off GOFLAGS=-mod=mod "$GO" mod download -json "$mod@$ver" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	[ -n "$src" ] || { log "cannot download $mod@$ver"; exit 1; }
	cp -r "$src" "$dir"
	chmod -R u+w "$dir"
	touch "$dir/.complete"
}

# standin_build NAME MODULE VERSION PKG: the stand-in's binary, rebuilt only
# when the version changes.
standin_build() {
	local name=$1 mod=$2 ver=$3 pkg=$4
	local ctx=$CACHE/$name
	mkdir -p "$ctx"
	if [ -x "$ctx/$name.bin" ] && [ "$(cat "$ctx/version" 2>/dev/null)" = "$ver" ]; then
		return
	fi
	module_src "$mod" "$ver" "$CACHE/src/$name-$ver"
	log "go build $mod@$ver ($pkg); the first build takes minutes"
	# -mod=readonly: the module's own go.sum must cover every dependency.
	(cd "$CACHE/src/$name-$ver" && GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" gobuild "$ctx/$name.bin" "$pkg")
	echo "$ver" >"$ctx/version"
}

# busybox DIR: Debian's static busybox, from its package (not installed).
busybox() {
	local dir=$1 deb=$CACHE/debs
	mkdir -p "$deb"
	if [ ! -x "$deb/busybox" ]; then
		if ! ls "$deb"/busybox-static_*.deb >/dev/null 2>&1; then
			(cd "$deb" && apt-get download busybox-static >/dev/null 2>&1) || {
				[ "$(id -u)" = 0 ] && apt-get update -qq && (cd "$deb" && apt-get download busybox-static >/dev/null)
			} || { log "cannot download Debian's busybox-static"; exit 1; }
		fi
		rm -rf "$deb/busybox-x"
		dpkg-deb -x "$deb"/busybox-static_*.deb "$deb/busybox-x"
		cp "$deb/busybox-x/bin/busybox" "$deb/busybox"
	fi
	cp "$deb/busybox" "$dir/busybox"
}

# need CMD PACKAGE: the Debian package providing CMD, installed when
# missing and root.
need() {
	command -v "$1" >/dev/null 2>&1 && return
	if [ "$(id -u)" != 0 ]; then
		log "$1 is missing: apt-get install $2"
		exit 1
	fi
	log "installing $2"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null ||
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null; }
}

# rootfs DIR BINARY...: the binaries at their paths with every shared
# library they load (from ldd) and the dynamic loader.
rootfs() {
	local dir=$1
	shift
	rm -rf "$dir"
	mkdir -p "$dir"
	local f lib
	for f in "$@"; do
		mkdir -p "$dir$(dirname "$f")"
		cp -L "$f" "$dir$f"
		for lib in $(ldd "$f" | awk '/=> \//{print $3} /^\t\//{print $1}'); do
			mkdir -p "$dir$(dirname "$lib")"
			cp -L "$lib" "$dir$lib"
		done
	done
}

standins() {
	standin_build nats github.com/nats-io/nats-server/v2 "$NATS_VERSION" .
	cp "$CACHE/nats/nats.bin" "$CACHE/nats/nats-server"
	busybox "$CACHE/nats"
	image nats "$CACHE/nats"

	standin_build jaeger github.com/jaegertracing/jaeger "$JAEGER_VERSION" ./cmd/jaeger
	cp "$CACHE/jaeger/jaeger.bin" "$CACHE/jaeger/jaeger"
	busybox "$CACHE/jaeger"
	image jaeger "$CACHE/jaeger"

	need redis-server redis-server
	need redis-cli redis-tools
	rootfs "$CACHE/redis/rootfs" "$(command -v redis-server)" "$(command -v redis-cli)"
	mkdir -p "$CACHE/redis/rootfs/data"
	image redis "$CACHE/redis"

	need sipp sip-tester
	rootfs "$CACHE/sipp/rootfs" "$(command -v sipp)"
	mkdir -p "$CACHE/sipp/rootfs/bin"
	busybox "$CACHE/sipp/rootfs/bin"
	image sipp "$CACHE/sipp"
}

mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
services
if [ "${1:-}" = standins ]; then
	standins
fi
log "done"
