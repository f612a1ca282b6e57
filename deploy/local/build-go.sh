#!/usr/bin/env bash
# Build a pinned Go binary of the local stack from its module: jaeger | minio | otelcol |
# prom-label-proxy (the query service's per-team label enforcement), and telemetrygen (the
# load generator benchmarks/stack.py drives the collector with).
# Binaries, sources and Go caches live in a cache folder outside the repo; a build is reused
# while its pin is unchanged. Prints the binary's path on its last line.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${OTEL_KIT_CACHE:-$HOME/.cache/otel-kit}"
export GOTOOLCHAIN=local GOPATH="$cache/go" GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build"
export GOFLAGS=-modcacherw

# Jaeger v2.13.0 is tagged v1.76.0 too (commit 63b27e1810a710ac54dc4522da0538e540bdc545): its
# v2 tags are not valid Go module versions, and the proxy here answers 403 for a bare commit,
# so the v1 tag of the same commit is the pin. It is the newest release the proxy serves.
jaeger_module="github.com/jaegertracing/jaeger@v1.76.0"
jaeger_commit="63b27e1810a710ac54dc4522da0538e540bdc545"
jaeger_version="v2.13.0"
# MinIO tags releases as RELEASE.<date>, not semver: pin the pseudo-version of a commit.
minio_module="github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"

need_go() {
  command -v go >/dev/null || { echo "go is not installed: Go >= 1.25 is needed to build $1" >&2; exit 1; }
}

case "${1:-}" in
  jaeger)
    binary="$cache/bin/jaeger-$jaeger_version"
    if [ ! -x "$binary" ]; then
      need_go Jaeger
      echo "==> building Jaeger $jaeger_version from $jaeger_module (first build takes minutes)" >&2
      # `go install` refuses the module because its go.mod has a replace directive; building
      # it as the main module applies the replace as Jaeger's own release build does.
      dir=$(go mod download -json "$jaeger_module" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
      src="$cache/src/jaeger-$jaeger_version"
      rm -rf "$src" && mkdir -p "$(dirname "$src")" && cp -r "$dir" "$src" && chmod -R u+w "$src"
      pkg=github.com/jaegertracing/jaeger/internal/version
      (cd "$src" && go build -trimpath -o "$binary.tmp" \
        -ldflags="-s -w -X $pkg.commitSHA=$jaeger_commit -X $pkg.latestVersion=$jaeger_version" \
        ./cmd/jaeger >&2)
      mv "$binary.tmp" "$binary"
    fi
    ;;
  minio)
    version="${minio_module#*@}"
    binary="$cache/bin/minio-$version"
    if [ ! -x "$binary" ]; then
      need_go MinIO
      echo "==> building MinIO from $minio_module (first build takes minutes)" >&2
      mkdir -p "$cache/bin/minio-build"
      GOBIN="$cache/bin/minio-build" go install -trimpath -ldflags="-s -w" "$minio_module" >&2
      mv "$cache/bin/minio-build/minio" "$binary"
    fi
    ;;
  otelcol)
    binary=$(bash "$here/../../collector/build.sh" | tail -n 1)
    ;;
  prom-label-proxy)
    version="v0.11.1"
    binary="$cache/bin/prom-label-proxy-$version"
    if [ ! -x "$binary" ]; then
      need_go prom-label-proxy
      echo "==> building prom-label-proxy $version" >&2
      mkdir -p "$cache/bin/prom-label-proxy-build"
      GOBIN="$cache/bin/prom-label-proxy-build" go install -trimpath -ldflags="-s -w" \
        "github.com/prometheus-community/prom-label-proxy@$version" >&2
      mv "$cache/bin/prom-label-proxy-build/prom-label-proxy" "$binary"
    fi
    ;;
  telemetrygen)
    version="v0.157.0"  # the collector's release line
    binary="$cache/bin/telemetrygen-$version"
    if [ ! -x "$binary" ]; then
      need_go telemetrygen
      echo "==> building telemetrygen $version" >&2
      mkdir -p "$cache/bin/telemetrygen-build"
      GONOSUMDB="github.com/open-telemetry/opentelemetry-collector-contrib" GOBIN="$cache/bin/telemetrygen-build" \
        go install "github.com/open-telemetry/opentelemetry-collector-contrib/cmd/telemetrygen@$version" >&2
      mv "$cache/bin/telemetrygen-build/telemetrygen" "$binary"
    fi
    ;;
  *)
    echo "usage: $0 jaeger|minio|otelcol|prom-label-proxy|telemetrygen" >&2
    exit 2
    ;;
esac
echo "$binary"
