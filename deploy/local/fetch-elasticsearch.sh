#!/usr/bin/env bash
# Fetch the pinned Elasticsearch for the local stack from Maven Central (its integ-test-zip:
# the Elastic License 2.0 build without the bundled JDK; runs on Debian's Java 17) and unpack
# it. The zip is cached outside the repo; prints the unpacked home on its last line.
# Elasticsearch refuses to run as root, so as root the home goes under /var/cache (readable
# by the stack's elasticsearch user); otherwise it stays in the user's cache.
set -euo pipefail
version="8.19.21"
cache="${OTEL_KIT_CACHE:-$HOME/.cache/otel-kit}"
zip="$cache/elasticsearch/elasticsearch-$version.zip"
if [ "$(id -u)" -eq 0 ]; then home_base="/var/cache/otel-kit"; else home_base="$cache/elasticsearch"; fi
home="$home_base/elasticsearch-$version"

if [ ! -f "$zip" ]; then
  command -v mvn >/dev/null || { echo "mvn is not installed (Debian maven) to fetch Elasticsearch" >&2; exit 1; }
  echo "==> fetching Elasticsearch $version from Maven Central (107 MB)" >&2
  mvn -q -Dmaven.repo.local="$cache/m2" dependency:copy \
    -Dartifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$version:zip" \
    -DoutputDirectory="$cache/elasticsearch" >&2
fi
if [ ! -x "$home/bin/elasticsearch" ]; then
  mkdir -p "$home_base"
  rm -rf "$home.tmp" && mkdir "$home.tmp"
  unzip -q "$zip" -d "$home.tmp"
  rm -rf "$home" && mv "$home.tmp/elasticsearch-$version" "$home" && rmdir "$home.tmp"
fi
echo "$home"
