#!/usr/bin/env bash
# bench/compare.sh: Apache ZooKeeper 3.8 vs corral-server, side by side.
#
# Starts each server standalone (or, with --ensemble 3, as a 3-server ensemble) on
# 127.0.0.1 with the same zoo.cfg settings, runs the same corral-bench scenarios against
# both alternately (round 1: ZooKeeper, Corral; round 2: ZooKeeper, Corral; ...), then
# prints medians and Corral / ZooKeeper ratios (with server RSS and CPU seconds per 1k
# operations from /proc, summed over an ensemble's members). Each round uses fresh servers
# and data directories: one start for the cold start (spawn until the first create
# succeeds), the load scenarios and the watch fan-out; another fresh one for the fill (so
# its RSS is measured on a tree of known size); with an ensemble, a third fresh one for the
# leader failover (SIGKILL of the leader under a writer). Clients of an ensemble get the
# connect string of all its members.
#
# Only the servers this script started are stopped (by PID); temporary data is removed on
# exit. Results (JSON lines, ratio table, server logs) are kept in --out.
#
# See BENCHMARKS.md for what each scenario measures.
set -euo pipefail
ORIG_ARGS="$*"

usage() {
    cat <<'USAGE'
usage: bench/compare.sh [options]

  --quick            short run (1 s windows, 1000 watchers, 20k znodes, 1 round): ~40 s
  --rounds N         A/B rounds (default 2; quick 1)
  --duration D       measured window per load scenario (default 10s; quick 1s)
  --warmup D         warm-up per load scenario (default 2s; quick 300ms)
  --sessions N       sessions of the throughput scenarios (default 64)
  --in-flight K      requests in flight per session (default 32)
  --watchers N       watch fan-out sessions, 0 skips (default 10000; quick 1000)
  --fill-nodes N     fill scenario znodes, 0 skips (default 1000000; quick 20000)
  --only LIST        only scenarios starting with these prefixes, e.g. get-,set-64x32,fill
  --out DIR          where results go (default target/bench-results/compare-<time>)
  --zk-port P        ZooKeeper client port (default 22181)
  --corral-port P    Corral client port (default 22182)
  --server-cpus L    pin the servers to these CPUs (taskset -c L), e.g. 0-3
  --bench-cpus L     pin corral-bench to these CPUs, e.g. 4-7 (keep the load generator
                     off the server's cores on the quiet machine)
  --no-build         use the existing target/release binaries
  --ensemble N       1 (default): standalone servers; 3: 3-server ensembles (and the
                     failover scenario)
  --zk-fill-heap H   ZooKeeper's -Xmx for the fill scenario only (default 2g: 1M znodes do
                     not fit in the 1g of the other scenarios)
  --no-failover      skip the failover scenario of an ensemble
  -h, --help         this text
USAGE
}

QUICK=0
ROUNDS=""
DURATION=""
WARMUP=""
SESSIONS=64
IN_FLIGHT=32
WATCHERS=""
FILL_NODES=""
ONLY=""
OUT=""
ZK_PORT=22181
CORRAL_PORT=22182
BUILD=1
ENSEMBLE=1
SERVER_CPUS=""
BENCH_CPUS=""
ZK_FILL_HEAP=2g
FAILOVER=1

need_value() { [[ $# -ge 2 && -n "$2" ]] || { echo "compare.sh: $1 needs a value" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1; shift ;;
        --rounds) need_value "$@"; ROUNDS=$2; shift 2 ;;
        --duration) need_value "$@"; DURATION=$2; shift 2 ;;
        --warmup) need_value "$@"; WARMUP=$2; shift 2 ;;
        --sessions) need_value "$@"; SESSIONS=$2; shift 2 ;;
        --in-flight) need_value "$@"; IN_FLIGHT=$2; shift 2 ;;
        --watchers) need_value "$@"; WATCHERS=$2; shift 2 ;;
        --fill-nodes) need_value "$@"; FILL_NODES=$2; shift 2 ;;
        --only) need_value "$@"; ONLY=$2; shift 2 ;;
        --out) need_value "$@"; OUT=$2; shift 2 ;;
        --zk-port) need_value "$@"; ZK_PORT=$2; shift 2 ;;
        --corral-port) need_value "$@"; CORRAL_PORT=$2; shift 2 ;;
        --server-cpus) need_value "$@"; SERVER_CPUS=$2; shift 2 ;;
        --bench-cpus) need_value "$@"; BENCH_CPUS=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --ensemble) need_value "$@"; ENSEMBLE=$2; shift 2 ;;
        --zk-fill-heap) need_value "$@"; ZK_FILL_HEAP=$2; shift 2 ;;
        --no-failover) FAILOVER=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "compare.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done

case "$ENSEMBLE" in
    1|3) ;;
    *) echo "compare.sh: --ensemble takes 1 or 3" >&2; exit 2 ;;
esac

if [[ $QUICK == 1 ]]; then
    : "${ROUNDS:=1}" "${DURATION:=1s}" "${WARMUP:=300ms}" "${WATCHERS:=1000}" "${FILL_NODES:=20000}"
else
    : "${ROUNDS:=2}" "${DURATION:=10s}" "${WARMUP:=2s}" "${WATCHERS:=10000}" "${FILL_NODES:=1000000}"
fi
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --rounds must be a positive integer" >&2; exit 2; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$REPO/target/release/corral-bench"
SERVER="$REPO/target/release/corral-server"
if [[ $BUILD == 1 ]]; then
    (cd "$REPO" && cargo build --release -p corral-server && cargo build --release -p corral-bench)
fi
for bin in "$BENCH" "$SERVER"; do
    [[ -x "$bin" ]] || { echo "compare.sh: $bin is missing (build it, or drop --no-build)" >&2; exit 2; }
done
command -v java >/dev/null || { echo "compare.sh: java not found (apt-get install zookeeper)" >&2; exit 2; }
[[ -e /usr/share/java/zookeeper.jar ]] || { echo "compare.sh: /usr/share/java/zookeeper.jar not found (apt-get install zookeeper)" >&2; exit 2; }

SERVER_PREFIX=()
BENCH_PREFIX=()
if [[ -n "$SERVER_CPUS$BENCH_CPUS" ]]; then
    command -v taskset >/dev/null || { echo "compare.sh: --server-cpus/--bench-cpus need taskset (util-linux)" >&2; exit 2; }
fi
[[ -n "$SERVER_CPUS" ]] && SERVER_PREFIX=(taskset -c "$SERVER_CPUS")
[[ -n "$BENCH_CPUS" ]] && BENCH_PREFIX=(taskset -c "$BENCH_CPUS")
bench() { "${BENCH_PREFIX[@]}" "$BENCH" "$@"; }

# Ports of member m (1..N) of a server kind whose base is P: client P + 10(m-1), quorum
# P + 1000 + 10(m-1), election P + 2000 + 10(m-1).
client_port() { echo $(($1 + 10 * ($2 - 1))); }
quorum_port() { echo $(($1 + 1000 + 10 * ($2 - 1))); }
election_port() { echo $(($1 + 2000 + 10 * ($2 - 1))); }
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for base in "$ZK_PORT" "$CORRAL_PORT"; do
    for ((m = 1; m <= ENSEMBLE; m++)); do
        for p in $(client_port "$base" $m) $(quorum_port "$base" $m) $(election_port "$base" $m); do
            if port_in_use "$p"; then
                echo "compare.sh: 127.0.0.1:$p is already in use (choose --zk-port / --corral-port)" >&2
                exit 2
            fi
        done
    done
done

[[ -n "$OUT" ]] || OUT="$REPO/target/bench-results/compare-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/corral-compare.XXXXXX")

STARTED_PIDS=()
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        # Already dead (e.g. the failover's SIGKILL) but not yet reaped.
        [[ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" == Z ]] && break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
forget_pid() {
    local keep=() p
    for p in "${STARTED_PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
    STARTED_PIDS=("${keep[@]}")
}
cleanup() {
    local p
    for p in "${STARTED_PIDS[@]}"; do stop_pid "$p"; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# write_cfg <file> <dataDir> <port> <base>: the settings both servers get (plus the
# server.N lines and myid of an ensemble).
write_cfg() {
    cat > "$1" <<CFG
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$2
clientPort=$3
clientPortAddress=127.0.0.1
forceSync=yes
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=*
CFG
    if [[ $ENSEMBLE -gt 1 ]]; then
        local m
        for ((m = 1; m <= ENSEMBLE; m++)); do
            echo "server.$m=127.0.0.1:$(quorum_port "$4" $m):$(election_port "$4" $m)" >> "$1"
        done
    fi
}

# start_server <name> <tag> [heap]: starts fresh server(s) (1 or an ensemble), measures the
# cold start (spawn until a client's first create succeeds) into $RESULTS when the tag has
# no suffix, and waits until every member serves. Sets SERVER_PIDS (array), PID_LIST (comma
# list) and CONNECT (connect string of every member).
start_server() {
    local name=$1 tag=$2 heap=${3:-1g} base m dir port
    case "$name" in
        zookeeper) base=$ZK_PORT ;;
        corral) base=$CORRAL_PORT ;;
    esac
    SERVER_PIDS=()
    CONNECT=""
    for ((m = 1; m <= ENSEMBLE; m++)); do
        dir="$TMP/$name-$tag/m$m"
        port=$(client_port "$base" $m)
        mkdir -p "$dir/data"
        [[ $ENSEMBLE -gt 1 ]] && echo "$m" > "$dir/data/myid"
        write_cfg "$dir/zoo.cfg" "$dir/data" "$port" "$base"
        CONNECT+="${CONNECT:+,}127.0.0.1:$port"
    done
    local t0
    t0=$(date +%s%N)
    for ((m = 1; m <= ENSEMBLE; m++)); do
        dir="$TMP/$name-$tag/m$m"
        case "$name" in
            zookeeper)
                "${SERVER_PREFIX[@]}" java "-Xmx$heap" -cp '/usr/share/java/*' \
                    org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg" \
                    > "$OUT/$name-$tag-m$m.log" 2>&1 &
                ;;
            corral)
                CORRAL_LOG=warn "${SERVER_PREFIX[@]}" "$SERVER" --config "$dir/zoo.cfg" \
                    > "$OUT/$name-$tag-m$m.log" 2>&1 &
                ;;
        esac
        SERVER_PIDS+=($!)
        STARTED_PIDS+=($!)
    done
    PID_LIST=$(IFS=,; echo "${SERVER_PIDS[*]}")
    local cold=(--json /dev/null)
    [[ "$tag" =~ ^r[0-9]+$ ]] && cold=(--json "$RESULTS")
    if ! bench first-write --servers "$CONNECT" --since-ns "$t0" --timeout 90s \
        --name "coldstart-$ENSEMBLE" --label "$name" --round "$round" "${cold[@]}" \
        | tail -n +3 | sed 's/^/   /'; then
        echo "compare.sh: $name did not serve a write; its log:" >&2
        tail -20 "$OUT/$name-$tag-m1.log" >&2
        exit 1
    fi
    for ((m = 1; m <= ENSEMBLE; m++)); do
        if ! "$BENCH" wait --server "127.0.0.1:$(client_port "$base" $m)" --timeout 60s > /dev/null; then
            echo "compare.sh: $name member $m did not start; its log:" >&2
            tail -20 "$OUT/$name-$tag-m$m.log" >&2
            exit 1
        fi
    done
}

stop_server() {
    local p
    for p in "${SERVER_PIDS[@]}"; do
        stop_pid "$p"
        forget_pid "$p"
    done
    rm -rf "$TMP/$1-$2"
}

want_fill=0
if [[ "$FILL_NODES" != 0 ]]; then
    if [[ -z "$ONLY" || ",$ONLY," == *",fill"* ]]; then want_fill=1; fi
fi

{
    echo "# corral-bench compare: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "command: bench/compare.sh $ORIG_ARGS"
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM"
    echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "zookeeper: $(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null || echo unknown), $(java -version 2>&1 | head -1)"
    echo "corral: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown) (+ working tree)"
    echo "pinning: servers=${SERVER_CPUS:-none} bench=${BENCH_CPUS:-none}"
    echo "settings: rounds=$ROUNDS duration=$DURATION warmup=$WARMUP sessions=$SESSIONS in_flight=$IN_FLIGHT watchers=$WATCHERS fill_nodes=$FILL_NODES only=${ONLY:-all} ensemble=$ENSEMBLE zk_fill_heap=$ZK_FILL_HEAP"
} | tee "$OUT/machine.txt"

suite_only=()
[[ -n "$ONLY" ]] && suite_only=(--only "$ONLY")
[[ $QUICK == 1 ]] && suite_only+=(--quick)
want_failover=0
if [[ $ENSEMBLE -gt 1 && $FAILOVER == 1 ]]; then
    if [[ -z "$ONLY" || ",$ONLY," == *",failover"* ]]; then want_failover=1; fi
fi
for ((round = 1; round <= ROUNDS; round++)); do
    for name in zookeeper corral; do
        echo "== round $round: $name ($SECONDS s)"
        start_server "$name" "r$round"
        bench suite --servers "$CONNECT" --server-pid "$PID_LIST" \
            --label "$name" --round "$round" --json "$RESULTS" \
            --duration "$DURATION" --warmup "$WARMUP" \
            --sessions "$SESSIONS" --in-flight "$IN_FLIGHT" \
            --watchers "$WATCHERS" --fill-nodes 0 "${suite_only[@]}"
        stop_server "$name" "r$round"
        if [[ $want_fill == 1 ]]; then
            heap=1g
            [[ $name == zookeeper ]] && heap=$ZK_FILL_HEAP
            start_server "$name" "r$round-fill" "$heap"
            bench fill --servers "$CONNECT" --server-pid "$PID_LIST" \
                --label "$name" --round "$round" --json "$RESULTS" --nodes "$FILL_NODES" \
                | tail -n +3
            stop_server "$name" "r$round-fill"
        fi
        if [[ $want_failover == 1 ]]; then
            start_server "$name" "r$round-failover"
            bench failover --servers "$CONNECT" --pids "$PID_LIST" \
                --label "$name" --round "$round" --json "$RESULTS" | tail -n +3
            stop_server "$name" "r$round-failover"
        fi
    done
done

echo
bench ratio --baseline zookeeper --candidate corral "$RESULTS" | tee "$OUT/ratio.md"
echo
echo "results: $RESULTS, $OUT/ratio.md, server logs in $OUT"
