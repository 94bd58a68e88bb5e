# Shared by infra/local/{install,up,down,status}. Sourced, not executed.
# Everything the local servers write lives under $CPREC_STATE_DIR (default <repo>/.cprec).

CPREC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CPREC_STATE_DIR="${CPREC_STATE_DIR:-$CPREC_ROOT/.cprec}"
CPREC_LOG_DIR="$CPREC_STATE_DIR/logs"

KAFKA_PORT="${CPREC_KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${CPREC_KAFKA_CONTROLLER_PORT:-19093}"
KAFKA_HEAP="${CPREC_KAFKA_HEAP:-512m}"
KAFKA_LIB_DIR="$CPREC_ROOT/infra/kafka/lib"
KAFKA_STATE_DIR="$CPREC_STATE_DIR/kafka"
KAFKA_DATA_DIR="$KAFKA_STATE_DIR/data"
KAFKA_PROPS="$KAFKA_STATE_DIR/server.properties"
KAFKA_PID_FILE="$KAFKA_STATE_DIR/kafka.pid"
KAFKA_CLUSTER_ID_FILE="$KAFKA_STATE_DIR/cluster-id"
KAFKA_LOG_DIR="$CPREC_LOG_DIR/kafka"
KAFKA_START_TIMEOUT="${CPREC_KAFKA_START_TIMEOUT:-120}"

CLICKHOUSE_HTTP_PORT="${CPREC_CLICKHOUSE_HTTP_PORT:-18123}"
CLICKHOUSE_TCP_PORT="${CPREC_CLICKHOUSE_TCP_PORT:-19000}"
CLICKHOUSE_STATE_DIR="$CPREC_STATE_DIR/clickhouse"
CLICKHOUSE_DATA_DIR="$CLICKHOUSE_STATE_DIR/data"
CLICKHOUSE_CONFIG="$CLICKHOUSE_STATE_DIR/config.xml"
CLICKHOUSE_PID_FILE="$CLICKHOUSE_STATE_DIR/clickhouse-server.pid"
CLICKHOUSE_LOG_DIR="$CPREC_LOG_DIR/clickhouse"
CLICKHOUSE_START_TIMEOUT="${CPREC_CLICKHOUSE_START_TIMEOUT:-60}"
CLICKHOUSE_DB="${CPREC_CLICKHOUSE_DB:-cprec}"

log() { printf '[infra] %s\n' "$*" >&2; }
die() { printf '[infra] ERROR: %s\n' "$*" >&2; exit 1; }

# Replaces @KEY@ tokens in a template. Pure bash so paths with sed metacharacters are safe.
render_template() {
  local template="$1" output="$2"; shift 2
  local content pair key value
  content="$(<"$template")"
  # bash >= 5.2 would otherwise treat '&' in the replacement as "the matched text".
  shopt -u patsub_replacement 2>/dev/null || true
  for pair in "$@"; do
    key="${pair%%=*}"; value="${pair#*=}"
    content="${content//@${key}@/$value}"
  done
  printf '%s\n' "$content" > "$output.tmp"
  mv -f "$output.tmp" "$output"
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# Prints the pid of the first process whose command line contains every given fragment.
# Used to recognise *our* servers (their command lines hold this checkout's absolute paths),
# so a stale or missing pid file never makes us start a second copy or kill a stranger.
find_pid_by_cmdline() {
  local proc pid cmdline fragment match
  for proc in /proc/[0-9]*; do
    pid="${proc#/proc/}"
    [[ "$pid" == "$$" ]] && continue
    cmdline="$(tr '\0' ' ' < "$proc/cmdline" 2>/dev/null)" || continue
    [[ -z "$cmdline" ]] && continue
    match=1
    for fragment in "$@"; do
      [[ "$cmdline" == *"$fragment"* ]] || { match=0; break; }
    done
    if (( match )); then echo "$pid"; return 0; fi
  done
  return 1
}

# Reads a pid file and prints the pid only when that process is alive and still ours.
live_pid_from_file() {
  local pid_file="$1"; shift
  [[ -s "$pid_file" ]] || return 1
  local pid cmdline fragment
  pid="$(tr -dc '0-9' < "$pid_file")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  cmdline="$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" || return 1
  for fragment in "$@"; do
    [[ "$cmdline" == *"$fragment"* ]] || return 1
  done
  echo "$pid"
}

kafka_pid() {
  live_pid_from_file "$KAFKA_PID_FILE" kafka.Kafka "$KAFKA_PROPS" \
    || find_pid_by_cmdline kafka.Kafka "$KAFKA_PROPS"
}

clickhouse_pid() {
  live_pid_from_file "$CLICKHOUSE_PID_FILE" clickhouse "$CLICKHOUSE_CONFIG" \
    || find_pid_by_cmdline clickhouse "--config-file=$CLICKHOUSE_CONFIG"
}

clickhouse_url() { echo "http://127.0.0.1:$CLICKHOUSE_HTTP_PORT"; }

clickhouse_ping() {
  [[ "$(curl -s --max-time 2 "$(clickhouse_url)/ping" 2>/dev/null)" == "Ok." ]]
}

# Runs the TypeScript bootstrap helper (database, migrations, topics, Kafka health) with the
# project's path aliases. Needs node_modules (npm ci).
run_bootstrap() {
  (cd "$CPREC_ROOT" && \
    CPREC_KAFKA_BROKERS="${CPREC_KAFKA_BROKERS:-127.0.0.1:$KAFKA_PORT}" \
    CPREC_CLICKHOUSE_URL="${CPREC_CLICKHOUSE_URL:-$(clickhouse_url)}" \
    TS_NODE_PROJECT="$CPREC_ROOT/tsconfig.json" \
    node -r ts-node/register/transpile-only -r tsconfig-paths/register \
      "$CPREC_ROOT/infra/local/bootstrap.ts" "$@")
}

have_node_modules() {
  [[ -d "$CPREC_ROOT/node_modules/kafkajs" && -d "$CPREC_ROOT/node_modules/ts-node" ]]
}

# Sends SIGTERM, waits up to $2 seconds, then SIGKILL.
stop_pid() {
  local pid="$1" grace="$2" name="$3" waited=0
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do
    if (( waited >= grace * 10 )); then
      log "$name (pid $pid) did not stop within ${grace}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.1; waited=$((waited + 1))
  done
}

# Serialises up/down (e.g. a test restarting ClickHouse while someone runs up) so two scripts never
# start a second copy of a server or stop one that another is waiting on. Released on exit.
hold_infra_lock() {
  mkdir -p "$CPREC_STATE_DIR"
  exec 9>"$CPREC_STATE_DIR/infra.lock"
  if ! flock -n 9; then
    log "another infra/local script is running; waiting for it"
    flock -w 300 9 || die "timed out waiting for $CPREC_STATE_DIR/infra.lock"
  fi
}
