#!/usr/bin/env bash
# A real ZooKeeper (Debian's `zookeeper` package) on loopback ports, for development
# and tests. Installs the package when missing.
#
#   tools/zk.sh start  [--dir DIR] [--port PORT] [--ensemble N] [--tls] [--sasl] [--release 3.4]
#                      [--max-conns N]
#       starts one server (or an N-node ensemble) with its data under DIR (default
#       target/zk), client ports PORT, PORT+1, … (default 2181), waits until every
#       node answers `ruok` with `imok` (and the ensemble has a leader), and prints the
#       connect string (127.0.0.1:PORT,…). With --tls, each node also serves TLS on
#       its client port + 500 and requires a client certificate: DIR/tls holds a CA
#       (ca.pem), the servers' certificate (for 127.0.0.1 and localhost), a client
#       certificate and key (client.pem, client.key), and another CA (other-ca.pem)
#       with a client certificate it signed (other-client.pem, other-client.key),
#       which the servers refuse; DIR/secure_connect holds the TLS connect string.
#       With --sasl, each node requires a SASL DIGEST-MD5 login of every session
#       (enforce.auth.schemes=sasl): user `ringsoa`, password `ringsoa-secret`;
#       DIR/client.jaas is that login for zkCli.sh
#       (CLIENT_JVMFLAGS=-Djava.security.auth.login.config=DIR/client.jaas).
#       With --release 3.4, the nodes run ZooKeeper 3.4.13 instead, from Debian
#       bullseye's libzookeeper-java (downloaded once into target/zk-3.4), for
#       tests of what an older ensemble does to ringsoa (not with --tls or --sasl).
#       With --max-conns N, each node serves at most N connections from one client
#       host (maxClientCnxns; default 0, no limit) and closes more at once.
#   tools/zk.sh stop   [--dir DIR]    stops every node started under DIR, by PID
#   tools/zk.sh start-node K [--dir DIR]   starts node K again (after a test killed it)
#   tools/zk.sh status [--dir DIR]    prints each node's port, PID and mode
#   tools/zk.sh install               installs Debian's zookeeper package if missing
#
# Each node's PID is in DIR/node-K/pid and its client port in DIR/node-K/port, for
# tests that stop, pause (SIGSTOP) or kill one node.
set -euo pipefail

cmd=${1:-}
shift || true
node=""
if [ "$cmd" = start-node ]; then node=${1:?start-node needs a node number}; shift; fi
dir=target/zk
port=2181
nodes=1
tls=""
sasl=""
release=""
max_conns=0
while [ $# -gt 0 ]; do
    case "$1" in
    --dir) dir=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --ensemble) nodes=$2; shift 2 ;;
    --tls) tls=1; shift ;;
    --sasl) sasl=1; shift ;;
    --release) release=$2; shift 2 ;;
    --max-conns) max_conns=$2; shift 2 ;;
    *) echo "zk.sh: unknown argument $1 (see the header of tools/zk.sh)" >&2; exit 2 ;;
    esac
done

install() {
    # --tls makes its certificates with openssl; --release downloads with curl.
    local want=""
    [ -f /usr/share/java/zookeeper.jar ] || want=zookeeper
    [ -n "$tls" ] && ! command -v openssl >/dev/null && want+=" openssl"
    [ -n "$release" ] && ! command -v curl >/dev/null && want+=" curl"
    [ -z "$want" ] && return
    echo "zk.sh: installing Debian's $want" >&2
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    # shellcheck disable=SC2086 # one word per package
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $want >/dev/null ||
        { $sudo apt-get update -q >/dev/null && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $want >/dev/null; }
}

# Answer of the four-letter word $2 on port $1 (empty when none).
four() { (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf %s "$2" >&3 && timeout 2 cat <&3) 2>/dev/null || true; }

mode_of() { four "$1" srvr | sed -n 's/^Mode: //p'; }

# Starts the node in folder $1 from its zoo.cfg.
launch() {
    # Netty (for --tls) also needs its codec and resolver, which the jar's
    # manifest leaves out.
    local n=$1 cp="/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/netty-codec.jar:/usr/share/java/netty-resolver.jar"
    local flags=()
    [ -f "$n/../jaas.conf" ] && flags=("-Djava.security.auth.login.config=$n/../jaas.conf")
    if [ -f "$n/release-jar" ]; then
        # 3.4 logs through slf4j-simple; its log4j JMX beans are left out.
        cp="$(cat "$n/release-jar"):/usr/share/java/slf4j-api.jar:/usr/share/java/slf4j-simple.jar:/usr/share/java/log4j-1.2.jar"
        flags=(-Dzookeeper.jmx.log4j.disable=true)
    fi
    nohup java -Xmx256m "${flags[@]}" -Dzookeeper.log.dir="$n" -Dzookeeper.root.logger=INFO,CONSOLE \
        -Dlog4j.configuration=file:/etc/zookeeper/conf/log4j.properties \
        -cp "$cp" org.apache.zookeeper.server.quorum.QuorumPeerMain "$n/zoo.cfg" \
        >>"$n/server.log" 2>&1 &
    echo $! >"$n/pid"
}

# Waits until the node on port $1 answers ruok and has a mode (node number $2).
await() {
    local deadline=$((SECONDS + 60))
    until [ "$(four "$1" ruok)" = imok ] && [ -n "$(mode_of "$1")" ]; do
        if [ $SECONDS -ge $deadline ]; then
            echo "zk.sh: node $2 (port $1) did not answer within 60 s; log: $dir/node-$2/server.log" >&2
            exit 1
        fi
        if ! kill -0 "$(cat "$dir/node-$2/pid")" 2>/dev/null; then
            echo "zk.sh: node $2 (port $1) exited at start; log: $dir/node-$2/server.log" >&2
            exit 1
        fi
        sleep 0.2
    done
}

# ZooKeeper 3.4.13's jar (Debian bullseye's libzookeeper-java), downloaded once;
# prints its path. Its logging jars (slf4j, log4j 1.2) come with Debian's
# zookeeper package.
release_jar() {
    [ "$release" = 3.4 ] || { echo "zk.sh: --release knows 3.4 only" >&2; exit 2; }
    local cache jar
    cache="$(cd "$(dirname "$0")/.." && pwd)/target/zk-3.4"
    jar="$cache/zookeeper.jar"
    if [ ! -f "$jar" ]; then
        mkdir -p "$cache"
        local base file=""
        for base in http://deb.debian.org/debian http://archive.debian.org/debian; do
            file=$(curl -fsS --max-time 60 "$base/dists/bullseye/main/binary-all/Packages.gz" | gzip -dc |
                awk '/^Package: /{p = ($2 == "libzookeeper-java")} p && /^Filename: /{print $2; exit}') || true
            [ -n "$file" ] && curl -fsS --max-time 120 -o "$cache/zk.deb" "$base/$file" && break
            file=""
        done
        [ -n "$file" ] || { echo "zk.sh: cannot download ZooKeeper 3.4 (Debian bullseye's libzookeeper-java)" >&2; exit 1; }
        rm -rf "$cache/x"
        dpkg-deb -x "$cache/zk.deb" "$cache/x"
        # Whole or not at all: an interrupted copy leaves no jar to start from.
        cp "$(find "$cache/x" -name 'zookeeper-3.4*.jar' | head -1)" "$jar.tmp"
        mv "$jar.tmp" "$jar"
        rm -rf "$cache/x" "$cache/zk.deb"
    fi
    echo "$jar"
}

# Makes the CA, server and client certificates of --tls under $1 (openssl).
make_certs() {
    local t=$1
    mkdir -p "$t"
    (
        cd "$t"
        ca() { openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.pem" -days 2 -subj "/CN=$1" 2>/dev/null; }
        ca ca
        ca other-ca
        # leaf NAME SAN [CA]: a certificate for NAME signed by CA (default ca).
        leaf() {
            local by=${3:-ca}
            openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null
            printf 'subjectAltName=%s\n' "$2" >"$1.ext"
            openssl x509 -req -in "$1.csr" -CA "$by.pem" -CAkey "$by.key" -CAcreateserial -days 2 -out "$1.pem" -extfile "$1.ext" 2>/dev/null
        }
        leaf server "IP:127.0.0.1,DNS:localhost"
        leaf client "DNS:ringsoa-client"
        leaf other-client "DNS:ringsoa-client" other-ca
        # ZooKeeper's PEM key store: the key and its certificate in one file.
        cat server.key server.pem >server-keystore.pem
    )
}

start_node() {
    local n="$dir/node-$node"
    [ -f "$n/zoo.cfg" ] || { echo "zk.sh: no node $node under $dir" >&2; exit 1; }
    if [ -f "$n/pid" ]; then
        # A node just killed may take a moment to go.
        for _ in $(seq 50); do kill -0 "$(cat "$n/pid")" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$(cat "$n/pid")" 2>/dev/null; then
            echo "zk.sh: node $node already runs" >&2
            exit 1
        fi
    fi
    launch "$n"
    await "$(cat "$n/port")" "$node"
}

start() {
    install
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if ls "$dir"/node-*/pid >/dev/null 2>&1; then
        echo "zk.sh: $dir already has nodes; run tools/zk.sh stop --dir $dir first" >&2
        exit 1
    fi
    [ -n "$tls" ] && make_certs "$dir/tls"
    local jar=""
    if [ -n "$release" ]; then
        [ -n "$tls$sasl" ] && { echo "zk.sh: --release goes without --tls and --sasl" >&2; exit 2; }
        jar=$(release_jar)
    fi
    if [ -n "$sasl" ]; then
        printf 'Server {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  user_ringsoa="ringsoa-secret";\n};\n' >"$dir/jaas.conf"
        printf 'Client {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  username="ringsoa"\n  password="ringsoa-secret";\n};\n' >"$dir/client.jaas"
    fi
    local servers="" k
    for k in $(seq 1 "$nodes"); do
        servers+="server.$k=127.0.0.1:$((port + 1000 + k)):$((port + 2000 + k))"$'\n'
    done
    for k in $(seq 1 "$nodes"); do
        local n="$dir/node-$k" p=$((port + k - 1))
        mkdir -p "$n/data"
        echo "$k" >"$n/data/myid"
        echo "$p" >"$n/port"
        if [ -n "$jar" ]; then echo "$jar" >"$n/release-jar"; else rm -f "$n/release-jar"; fi
        {
            echo "tickTime=500"
            echo "initLimit=20"
            echo "syncLimit=10"
            echo "dataDir=$n/data"
            echo "clientPort=$p"
            echo "clientPortAddress=127.0.0.1"
            echo "maxClientCnxns=$max_conns"
            echo "minSessionTimeout=1000"
            echo "4lw.commands.whitelist=*"
            echo "admin.enableServer=false"
            # 3.4 wants the maximum given with the minimum (20 ticks, as by default).
            [ -n "$jar" ] && echo "maxSessionTimeout=10000"
            [ "$nodes" -gt 1 ] && printf %s "$servers"
            if [ -n "$tls" ]; then
                echo "secureClientPort=$((p + 500))"
                echo "secureClientPortAddress=127.0.0.1"
                echo "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory"
                echo "ssl.keyStore.location=$dir/tls/server-keystore.pem"
                echo "ssl.keyStore.type=PEM"
                echo "ssl.trustStore.location=$dir/tls/ca.pem"
                echo "ssl.trustStore.type=PEM"
                echo "ssl.clientAuth=need"
            fi
            if [ -n "$sasl" ]; then
                echo "authProvider.sasl=org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
                echo "enforce.auth.enabled=true"
                echo "enforce.auth.schemes=sasl"
            fi
        } >"$n/zoo.cfg"
        launch "$n"
    done
    local connect=""
    for k in $(seq 1 "$nodes"); do
        local p=$((port + k - 1))
        await "$p" "$k"
        connect+="${connect:+,}127.0.0.1:$p"
    done
    echo "$connect" >"$dir/connect"
    if [ -n "$tls" ]; then
        local secure=""
        for k in $(seq 1 "$nodes"); do secure+="${secure:+,}127.0.0.1:$((port + k - 1 + 500))"; done
        echo "$secure" >"$dir/secure_connect"
    fi
    echo "$connect"
}

stop() {
    local f pid
    for f in "$dir"/node-*/pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        kill -CONT "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$f"
    done
}

status() {
    local n
    for n in "$dir"/node-*; do
        [ -f "$n/pid" ] || continue
        local p
        p=$(cat "$n/port")
        echo "$(basename "$n") port=$p pid=$(cat "$n/pid") mode=$(mode_of "$p")"
    done
}

case "$cmd" in
install) install ;;
start) start ;;
start-node) start_node ;;
stop) stop ;;
status) status ;;
*) echo "usage: tools/zk.sh install|start|stop|status|start-node K [--dir DIR] [--port PORT] [--ensemble N] [--tls] [--sasl] [--release 3.4] [--max-conns N]" >&2; exit 2 ;;
esac
