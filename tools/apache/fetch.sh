#!/usr/bin/env bash
# Brings Apache Thrift's own test material, never committed: Debian's source package
# of thrift (the version Debian's thrift-compiler is built from), unpacked once under
# target/apache-thrift; Debian's thrift-compiler; Apache's Python library built from
# that source into its own venv; its Node.js library's dependencies (npm, and Debian's
# nodejs when missing); its Go test client and server (Debian's golang-go); and the
# Python, Node.js and Go code Debian's compiler generates from the downloaded
# test/ThriftTest.thrift. Prints the unpacked source directory.
#   Usage: src=$(tools/apache/fetch.sh)
set -euo pipefail
# Everything but the final path goes to stderr.
root=$(cd "$(dirname "$0")/../.." && pwd)
dir="$root/target/apache-thrift"
mkdir -p "$dir"
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
log() { echo "apache/fetch.sh: $*" >&2; }
# Installs Debian packages, updating the package lists first if they are stale.
apt_install() {
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null ||
        { $sudo apt-get update -q >/dev/null &&
          $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
}

if ! command -v thrift >/dev/null; then
    log "installing Debian's thrift-compiler"
    apt_install thrift-compiler
fi
version=$(thrift --version | awk '{print $3}')

src="$dir/thrift-$version"
if [ ! -f "$src/test/ThriftTest.thrift" ]; then
    log "downloading Debian's source package of thrift $version"
    apt="$dir/apt"
    mkdir -p "$apt/lists/partial"
    # The machine lists binary packages only: ask for sources with a list of our own.
    codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $codename main" \
        >"$apt/sources.list"
    opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
          -o "Dir::State::Lists=$apt/lists" -o APT::Sandbox::User=root)
    apt-get "${opts[@]}" update -q >/dev/null
    (cd "$dir" && apt-get "${opts[@]}" source --download-only -q thrift >/dev/null)
    tar -xzf "$dir"/thrift_"$version".orig.tar.gz -C "$dir"
fi

venv="$dir/venv"
if ! "$venv/bin/python" -c 'import thrift.protocol.fastbinary' 2>/dev/null; then
    log "building Apache's Python library $version from the source"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$src/lib/py" >&2
fi

# Apache's Node.js library (from the same source) and its cross-test client and
# server (lib/nodejs/test): their dependencies from npm, at the versions the
# library's package.json asks for, and the code generated for ThriftTest.thrift.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    log "installing Debian's nodejs and npm"
    apt_install nodejs npm
fi
node_deps=(q@1.5.1 node-int64@0.4.0 ws@5.2.3 isomorphic-ws@4.0.1 browser-or-node@1.3.0
           commander@2.20.3 tape@4.17.0)
if [ ! -f "$dir/node/node_modules/tape/package.json" ]; then
    log "installing the Node.js library's dependencies from npm"
    mkdir -p "$dir/node"
    echo '{"name": "ringsoa-apache-node-peers", "private": true}' >"$dir/node/package.json"
    npm install --prefix "$dir/node" --no-audit --no-fund --silent "${node_deps[@]}" >&2
fi
if [ ! -f "$src/lib/nodejs/test/gen-nodejs/ThriftTest.js" ]; then
    thrift --gen js:node -o "$src/lib/nodejs/test" "$src/test/ThriftTest.thrift" >&2
fi

# Apache's Go library and its cross-test programs (test/go), built as Apache's
# test/go/Makefile.am does: ThriftTest.thrift without the one line Go cannot map
# (a map keyed by a list), generated into the source's test/go/src/gen. The source's
# go.mod asks for golang/mock, used only by Apache's unit tests, which are not
# built: a go.mod of our own (-modfile) asks for nothing, and nothing is fetched.
if ! command -v go >/dev/null; then
    log "installing Debian's golang-go"
    apt_install golang-go
fi
# Beside them, our THeader client (tools/apache/go/header_client.go), rebuilt when
# it changes.
go_client="$src/test/go/src/bin/ringsoa_header_client/main.go"
if [ ! -x "$dir/go/bin/testserver" ] || [ ! -x "$dir/go/bin/ringsoa_header_client" ] ||
   ! cmp -s "$root/tools/apache/go/header_client.go" "$go_client"; then
    log "building Apache's Go test client and server"
    mkdir -p "$dir/go/bin" "$src/test/go/src/gen" "$(dirname "$go_client")"
    cp "$root/tools/apache/go/header_client.go" "$go_client"
    printf 'module github.com/apache/thrift\n\ngo 1.18\n' >"$dir/go/go.mod"
    grep -v 'list.*map.*list.*map' "$src/test/ThriftTest.thrift" >"$dir/go/ThriftTest.thrift"
    thrift -out "$src/test/go/src/gen" --gen go:thrift_import=github.com/apache/thrift/lib/go/thrift,package_prefix=github.com/apache/thrift/test/go/src/gen/ \
        "$dir/go/ThriftTest.thrift" >&2
    (cd "$src" && GOPROXY=off GOFLAGS=-mod=mod GOPATH="$dir/go/path" GOCACHE="$dir/go/cache" \
        go build -buildvcs=false -modfile="$dir/go/go.mod" -o "$dir/go/bin/" \
        ./test/go/src/bin/testclient ./test/go/src/bin/testserver \
        ./test/go/src/bin/ringsoa_header_client) >&2
fi

if [ ! -f "$dir/gen-py/ThriftTest/ThriftTest.py" ]; then
    mkdir -p "$dir/gen-py"
    # The compiler prints warnings on stdout: keep them off ours (the caller reads
    # the source directory from it).
    thrift --gen py -out "$dir/gen-py" "$src/test/ThriftTest.thrift" >&2
fi
echo "$src"
