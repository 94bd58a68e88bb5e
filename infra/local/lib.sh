# Shared by infra/local/{install,up,down,status}. Sourced, not executed.
# Everything the local servers write lives under $CPREC_STATE_DIR (default <repo>/.cprec).

CPREC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CPREC_STATE_DIR="${CPREC_STATE_DIR:-$CPREC_ROOT/.cprec}"
CPREC_LOG_DIR="$CPREC_STATE_DIR/logs"

# Which layout the scripts manage: "single" (one Kafka broker, one ClickHouse; the default) or
# "cluster" (three brokers, two ClickHouse replicas and ZooKeeper on ports of their own:
# infra/local/cluster.sh). `--cluster` among a script's arguments is the same as
# CPREC_INFRA_PROFILE=cluster (lib.sh sees the sourcing script's arguments).
CPREC_INFRA_PROFILE="${CPREC_INFRA_PROFILE:-single}"
for _arg in "$@"; do [[ "$_arg" == --cluster ]] && CPREC_INFRA_PROFILE=cluster; done
unset _arg
case "$CPREC_INFRA_PROFILE" in
  single | cluster) ;;
  *) printf '[infra] ERROR: CPREC_INFRA_PROFILE must be single or cluster, got %s\n' "$CPREC_INFRA_PROFILE" >&2; exit 1 ;;
esac
cluster_profile() { [[ "$CPREC_INFRA_PROFILE" == cluster ]]; }

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

# Authentication (on by default): Kafka SASL/SCRAM with ACLs, ClickHouse users with passwords.
# CPREC_AUTH=off starts both servers open to every local process, as before issue 15.
CPREC_AUTH="${CPREC_AUTH:-on}"
SECRETS_DIR="$CPREC_STATE_DIR/secrets"
SECRETS_FILE="$SECRETS_DIR/cprec.env"
# Kafka principals whose SCRAM credentials the broker holds: "name sha256(password)" per line.
KAFKA_SCRAM_STATE="$KAFKA_STATE_DIR/scram-users"
# Keep in step with libs/contracts/src/principals.ts.
PRINCIPALS=(admin ingest sequencer trainer evaluator serving operator platform)
# Read-only ClickHouse users (readonly profile). Serving publishes what it does on a Kafka topic the
# evaluator stores (serving_events), so it writes no table.
CLICKHOUSE_READONLY_PRINCIPALS=(serving operator platform)

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
    cmdline="$(tr '\0' ' ' 2>/dev/null < "$proc/cmdline")" || continue
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
  cmdline="$(tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline")" || return 1
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

auth_enabled() {
  case "$CPREC_AUTH" in
    on | 1 | true) return 0 ;;
    off | 0 | false) return 1 ;;
    *) die "CPREC_AUTH must be on or off, got '$CPREC_AUTH'" ;;
  esac
}

random_secret() { od -An -tx1 -N24 /dev/urandom | tr -d ' \n'; }

sha256_hex() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

# The variable holding a principal's password: secret_variable KAFKA ingest → CPREC_KAFKA_PASSWORD_INGEST.
secret_variable() { echo "CPREC_$1_PASSWORD_${2^^}"; }

# Creates .cprec/secrets/cprec.env (directory 0700, file 0600) on first use and adds a generated
# password for every principal and server it lacks; existing passwords are kept.
ensure_secrets() {
  (umask 077 && mkdir -p "$SECRETS_DIR")
  chmod 700 "$SECRETS_DIR"
  if [[ ! -f "$SECRETS_FILE" ]]; then
    (umask 077 && cat > "$SECRETS_FILE" <<'EOT'
# cprec's generated secrets (infra/local/up; rotate with infra/local/rotate-secrets). Never commit.
# Load into a shell with: set -a && . .cprec/secrets/cprec.env && set +a
# Each process picks its own principal's line (the Kafka SCRAM user and the ClickHouse user are
# named after the principal); CPREC_KAFKA_USERNAME/PASSWORD, CPREC_CLICKHOUSE_USER/PASSWORD override.
EOT
    )
    log "generated secrets in $SECRETS_FILE (mode 0600)"
  fi
  chmod 600 "$SECRETS_FILE"
  local principal system variable
  for principal in "${PRINCIPALS[@]}"; do
    for system in KAFKA CLICKHOUSE; do
      variable="$(secret_variable "$system" "$principal")"
      grep -q "^$variable=" "$SECRETS_FILE" || printf '%s=%s\n' "$variable" "$(random_secret)" >> "$SECRETS_FILE"
    done
  done
}

# Prints a principal's password from the secrets file: secret KAFKA admin.
secret() {
  local variable value
  variable="$(secret_variable "$1" "$2")"
  value="$(sed -n "s/^$variable=//p" "$SECRETS_FILE" 2>/dev/null | tail -n 1)"
  [[ -n "$value" ]] || die "$variable missing in $SECRETS_FILE (run bash infra/local/up)"
  printf '%s' "$value"
}

# curl against ClickHouse's HTTP port as admin when authentication is on. The password travels in
# a curl config on a pipe, never on a command line (which every local user can read in /proc).
clickhouse_curl() {
  if auth_enabled && [[ -f "$SECRETS_FILE" ]]; then
    curl -s -K <(printf 'user = "admin:%s"\n' "$(secret CLICKHOUSE admin)") "$@"
  else
    curl -s "$@"
  fi
}

clickhouse_version() {
  clickhouse_curl --max-time 5 "$(clickhouse_url)/?query=SELECT%20version()" 2>/dev/null || true
}

clickhouse_ping() {
  [[ "$(curl -s --max-time 2 "$(clickhouse_url)/ping" 2>/dev/null)" == "Ok." ]]
}

# Runs the TypeScript bootstrap helper (database, migrations, topics, Kafka health) with the
# project's path aliases. Needs node_modules (npm ci).
run_bootstrap() {
  # The admin's credentials (and every principal's, unused here) from the secrets file.
  # The infra scripts always act as admin: a service's explicit credentials in the caller's
  # environment must not leak into them.
  (if auth_enabled && [[ -f "$SECRETS_FILE" ]]; then
     unset CPREC_KAFKA_USERNAME CPREC_KAFKA_PASSWORD CPREC_CLICKHOUSE_USER CPREC_CLICKHOUSE_PASSWORD
     set -a && source "$SECRETS_FILE" && set +a
   fi
   export CPREC_AUTH
   cd "$CPREC_ROOT" && \
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

# One <user> element of users-auth.xml: clickhouse_user_xml NAME SHA256 PROFILE.
clickhouse_user_xml() {
  cat <<EOT
        <$1>
            <password_sha256_hex>$2</password_sha256_hex>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>$3</profile>
            <quota>default</quota>
        </$1>
EOT
}

# Writes .cprec/clickhouse/users.xml (0600): open to loopback with CPREC_AUTH=off, else one
# password-protected user per principal. A running server picks a change up within seconds.
render_clickhouse_users() {
  local target="$CLICKHOUSE_STATE_DIR/users.xml"
  mkdir -p "$CLICKHOUSE_STATE_DIR"
  if ! auth_enabled; then
    (umask 077 && cp "$CPREC_ROOT/infra/clickhouse/users.xml" "$target.tmp") && mv -f "$target.tmp" "$target"
    return
  fi
  local users principal profile readonly_principal
  users="$(clickhouse_user_xml default "$(sha256_hex "$(random_secret)")" readonly)"
  for principal in "${PRINCIPALS[@]}"; do
    profile=default
    for readonly_principal in "${CLICKHOUSE_READONLY_PRINCIPALS[@]}"; do
      [[ "$principal" == "$readonly_principal" ]] && profile=readonly
    done
    users+=$'\n'"$(clickhouse_user_xml "$principal" "$(sha256_hex "$(secret CLICKHOUSE "$principal")")" "$profile")"
  done
  (umask 077 && render_template "$CPREC_ROOT/infra/clickhouse/users-auth.xml" "$target" "USERS=$users")
  chmod 600 "$target"
}

kafka_java_args() {
  printf '%s\0' java -Xmx"$KAFKA_HEAP" -Xms128m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true \
    -Dkafka.logs.dir="$KAFKA_LOG_DIR" \
    -Dlog4j.configuration="file:$CPREC_ROOT/infra/kafka/log4j.properties" \
    -cp "$KAFKA_LIB_DIR/*" "$@"
}

kafka_java() {
  local -a cmd
  mapfile -d '' cmd < <(kafka_java_args "$@")
  "${cmd[@]}"
}

# Runs a Kafka tool (main class and arguments) whose arguments hold secrets: they reach the JVM
# through a java @argfile (0600, removed afterwards), never through a command line.
kafka_java_secret() {
  local argfile arg rc=0
  (umask 077 && mkdir -p "$SECRETS_DIR")
  argfile="$(umask 077 && mktemp "$SECRETS_DIR/.java-args.XXXXXX")"
  for arg in "$@"; do
    arg="${arg//\\/\\\\}"
    printf '"%s"\n' "${arg//\"/\\\"}"
  done > "$argfile"
  kafka_java "@$argfile" || rc=$?
  rm -f "$argfile"
  return "$rc"
}

# Renders .cprec/kafka/server.properties (0600): the template, plus infra/kafka/auth.properties
# when $1 is "auth".
render_kafka_props() {
  mkdir -p "$KAFKA_STATE_DIR"
  (umask 077 && render_template "$CPREC_ROOT/infra/kafka/server.properties" "$KAFKA_PROPS" \
    "DATA_DIR=$KAFKA_DATA_DIR" "PORT=$KAFKA_PORT" "CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT")
  if [[ "$1" == auth ]]; then
    (umask 077 && render_template "$CPREC_ROOT/infra/kafka/auth.properties" "$KAFKA_PROPS.auth" \
      "PORT=$KAFKA_PORT" "CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT" "ADMIN_PASSWORD=$(secret KAFKA admin)")
    cat "$KAFKA_PROPS.auth" >> "$KAFKA_PROPS"
    rm -f "$KAFKA_PROPS.auth"
  fi
  chmod 600 "$KAFKA_PROPS"
}

# "auth" when the rendered (so the running) broker config authenticates, else "open".
kafka_props_mode() {
  if grep -q '^authorizer.class.name=' "$KAFKA_PROPS" 2>/dev/null; then echo auth; else echo open; fi
}

scram_fingerprint() { echo "$1 $(sha256_hex "$(secret KAFKA "$1")")"; }

# Prints the principals whose current password the broker does not hold yet (new principals, a
# log formatted before authentication existed, a password changed in the secrets file).
scram_missing() {
  local principal
  for principal in "${PRINCIPALS[@]}"; do
    grep -qxF "$(scram_fingerprint "$principal")" "$KAFKA_SCRAM_STATE" 2>/dev/null || echo "$principal"
  done
}

scram_record() {
  local principal
  (umask 077 && {
    for principal in "$@"; do grep -v "^$principal " "$KAFKA_SCRAM_STATE" 2>/dev/null > "$KAFKA_SCRAM_STATE.tmp" || true
      mv -f "$KAFKA_SCRAM_STATE.tmp" "$KAFKA_SCRAM_STATE"; scram_fingerprint "$principal" >> "$KAFKA_SCRAM_STATE"; done
  })
}

# A client config for Kafka's own tools, authenticated as admin with the password $1 (0600; the
# caller removes it).
kafka_admin_client_config() {
  local config
  config="$(umask 077 && mktemp "$SECRETS_DIR/.admin-client.XXXXXX")"
  printf '%s\n' 'security.protocol=SASL_PLAINTEXT' 'sasl.mechanism=SCRAM-SHA-256' \
    "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$1\";" \
    > "$config"
  echo "$config"
}

# Sets the SCRAM credential of each named principal to its password in the secrets file, through
# the running broker. $1: "open" (a broker without authentication: the one-off migration of a log
# formatted before authentication existed) or the admin password the broker accepts now.
kafka_set_scram() {
  local how="$1" principal config="" rc=0
  shift
  local -a auth=()
  if [[ "$how" != open ]]; then
    config="$(kafka_admin_client_config "$how")"
    auth=(--command-config "$config")
  fi
  for principal in "$@"; do
    log "Kafka: SCRAM credential for $principal"
    kafka_java_secret kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" "${auth[@]}" \
      --alter --entity-type users --entity-name "$principal" \
      --add-config "SCRAM-SHA-256=[iterations=8192,password=$(secret KAFKA "$principal")]" \
      >>"$KAFKA_LOG_DIR/kafka-configs.log" 2>&1 || { rc=$?; break; }
    scram_record "$principal"
  done
  [[ -n "$config" ]] && rm -f "$config"
  (( rc == 0 )) || die "kafka-configs failed for $principal; see $KAFKA_LOG_DIR/kafka-configs.log"
}

# Exports every principal's password (the secrets file) into the calling shell, for launchers that
# start services (scripts/main.sh, scripts/test.sh): each service then picks its own.
export_secrets() {
  if auth_enabled && [[ -f "$SECRETS_FILE" ]]; then
    set -a
    # shellcheck disable=SC1090
    source "$SECRETS_FILE"
    set +a
  fi
}
