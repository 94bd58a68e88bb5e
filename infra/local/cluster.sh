# The cluster profile (CPREC_INFRA_PROFILE=cluster, or --cluster): three Kafka brokers in KRaft
# mode, one ZooKeeper and two ClickHouse replicas of one shard, all on loopback ports of their own
# (so the single-node profile can run beside it) with state under .cprec/cluster/.
# Sourced by infra/local/{up,down,status} after lib.sh (up: after its own functions, which the
# cluster reuses node by node by pointing lib.sh's per-server variables at each node in turn).

CLUSTER_DIR="$CPREC_STATE_DIR/cluster"
CLUSTER_LOG_DIR="$CPREC_LOG_DIR/cluster"
# Non-secret endpoints for launchers and tests: `set -a && . .cprec/cluster/cluster.env && set +a`.
CLUSTER_ENV_FILE="$CLUSTER_DIR/cluster.env"

IFS=, read -r -a CLUSTER_KAFKA_PORTS <<< "${CPREC_CLUSTER_KAFKA_PORTS:-29092,29192,29292}"
IFS=, read -r -a CLUSTER_KAFKA_CONTROLLER_PORTS <<< "${CPREC_CLUSTER_KAFKA_CONTROLLER_PORTS:-29093,29193,29293}"
IFS=, read -r -a CLUSTER_CLICKHOUSE_HTTP_PORTS <<< "${CPREC_CLUSTER_CLICKHOUSE_HTTP_PORTS:-28123,28124}"
IFS=, read -r -a CLUSTER_CLICKHOUSE_TCP_PORTS <<< "${CPREC_CLUSTER_CLICKHOUSE_TCP_PORTS:-29000,29001}"
IFS=, read -r -a CLUSTER_CLICKHOUSE_INTERSERVER_PORTS <<< "${CPREC_CLUSTER_CLICKHOUSE_INTERSERVER_PORTS:-29009,29010}"
ZOOKEEPER_PORT="${CPREC_CLUSTER_ZOOKEEPER_PORT:-22181}"
ZOOKEEPER_HEAP="${CPREC_ZOOKEEPER_HEAP:-128m}"
ZOOKEEPER_STATE_DIR="$CLUSTER_DIR/zookeeper"
ZOOKEEPER_CONFIG="$ZOOKEEPER_STATE_DIR/zoo.cfg"
ZOOKEEPER_PID_FILE="$ZOOKEEPER_STATE_DIR/zookeeper.pid"
ZOOKEEPER_LOG_DIR="$CLUSTER_LOG_DIR/zookeeper"
ZOOKEEPER_CLASSPATH="/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
# Three JVMs on a laptop: smaller heaps than the single broker's 512m.
KAFKA_HEAP="${CPREC_KAFKA_HEAP:-384m}"
# One cluster id and one record of the SCRAM credentials for the three nodes' shared metadata log.
KAFKA_CLUSTER_ID_FILE="$CLUSTER_DIR/kafka-cluster-id"
KAFKA_SCRAM_STATE="$CLUSTER_DIR/kafka-scram-users"

(( ${#CLUSTER_KAFKA_PORTS[@]} == ${#CLUSTER_KAFKA_CONTROLLER_PORTS[@]} )) \
  || die "CPREC_CLUSTER_KAFKA_PORTS and CPREC_CLUSTER_KAFKA_CONTROLLER_PORTS must list as many ports"
(( ${#CLUSTER_CLICKHOUSE_HTTP_PORTS[@]} == ${#CLUSTER_CLICKHOUSE_TCP_PORTS[@]} \
   && ${#CLUSTER_CLICKHOUSE_HTTP_PORTS[@]} == ${#CLUSTER_CLICKHOUSE_INTERSERVER_PORTS[@]} )) \
  || die "CPREC_CLUSTER_CLICKHOUSE_{HTTP,TCP,INTERSERVER}_PORTS must list as many ports"

cluster_kafka_brokers() {
  local port list=()
  for port in "${CLUSTER_KAFKA_PORTS[@]}"; do list+=("127.0.0.1:$port"); done
  (IFS=,; echo "${list[*]}")
}

cluster_clickhouse_urls() {
  local port list=()
  for port in "${CLUSTER_CLICKHOUSE_HTTP_PORTS[@]}"; do list+=("http://127.0.0.1:$port"); done
  (IFS=,; echo "${list[*]}")
}

# Points lib.sh's Kafka variables at node $1 (1-based).
select_kafka_node() {
  local n="$1"
  KAFKA_NODE_ID="$n"
  KAFKA_PORT="${CLUSTER_KAFKA_PORTS[n - 1]}"
  KAFKA_CONTROLLER_PORT="${CLUSTER_KAFKA_CONTROLLER_PORTS[n - 1]}"
  KAFKA_STATE_DIR="$CLUSTER_DIR/kafka-$n"
  KAFKA_DATA_DIR="$KAFKA_STATE_DIR/data"
  KAFKA_PROPS="$KAFKA_STATE_DIR/server.properties"
  KAFKA_PID_FILE="$KAFKA_STATE_DIR/kafka.pid"
  KAFKA_LOG_DIR="$CLUSTER_LOG_DIR/kafka-$n"
}

# Points lib.sh's ClickHouse variables at replica $1 (1-based).
select_clickhouse_node() {
  local n="$1"
  CLICKHOUSE_REPLICA="$n"
  CLICKHOUSE_HTTP_PORT="${CLUSTER_CLICKHOUSE_HTTP_PORTS[n - 1]}"
  CLICKHOUSE_TCP_PORT="${CLUSTER_CLICKHOUSE_TCP_PORTS[n - 1]}"
  CLICKHOUSE_INTERSERVER_PORT="${CLUSTER_CLICKHOUSE_INTERSERVER_PORTS[n - 1]}"
  CLICKHOUSE_STATE_DIR="$CLUSTER_DIR/clickhouse-$n"
  CLICKHOUSE_DATA_DIR="$CLICKHOUSE_STATE_DIR/data"
  CLICKHOUSE_CONFIG="$CLICKHOUSE_STATE_DIR/config.xml"
  CLICKHOUSE_PID_FILE="$CLICKHOUSE_STATE_DIR/clickhouse-server.pid"
  CLICKHOUSE_LOG_DIR="$CLUSTER_LOG_DIR/clickhouse-$n"
}

zookeeper_pid() {
  live_pid_from_file "$ZOOKEEPER_PID_FILE" org.apache.zookeeper "$ZOOKEEPER_CONFIG" \
    || find_pid_by_cmdline org.apache.zookeeper "$ZOOKEEPER_CONFIG"
}

# ZooKeeper serves requests: `srvr` names its mode. Not `ruok`: that answers "imok" as soon as the
# port is bound, while the server may still be loading its data ("ZooKeeperServer not running"), and
# a ClickHouse 18.16 that connects then cannot attach its replicated tables and exits at start.
zookeeper_serving() {
  [[ "$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$ZOOKEEPER_PORT; printf srvr >&3; cat <&3" 2>/dev/null)" == *"Mode: "* ]]
}

# The secrets of the cluster's own links (ZooKeeper digest identity of ClickHouse, replica to
# replica), added to .cprec/secrets/cprec.env beside the principals' passwords.
ensure_cluster_secrets() {
  local variable
  for variable in CPREC_ZOOKEEPER_PASSWORD_CLICKHOUSE CPREC_CLICKHOUSE_PASSWORD_INTERSERVER; do
    grep -q "^$variable=" "$SECRETS_FILE" 2>/dev/null || printf '%s=%s\n' "$variable" "$(random_secret)" >> "$SECRETS_FILE"
  done
}

cluster_secret() {
  local value
  value="$(sed -n "s/^$1=//p" "$SECRETS_FILE" 2>/dev/null | tail -n 1)"
  if [[ -z "$value" ]]; then
    # CPREC_AUTH=off: the links still need a value; one per start, kept nowhere.
    value="$(random_secret)"
  fi
  printf '%s' "$value"
}

start_zookeeper() {
  local pid
  [[ -f /usr/share/java/zookeeper.jar ]] || die "ZooKeeper not installed. Run: bash infra/local/install --cluster"
  if pid="$(zookeeper_pid)"; then
    echo "$pid" > "$ZOOKEEPER_PID_FILE"
    log "ZooKeeper already running (pid $pid)"
  else
    port_open "$ZOOKEEPER_PORT" && die "port $ZOOKEEPER_PORT is in use by another process ($(port_owner_hint "$ZOOKEEPER_PORT")); \
set CPREC_CLUSTER_ZOOKEEPER_PORT to a free port"
    mkdir -p "$ZOOKEEPER_STATE_DIR/data" "$ZOOKEEPER_LOG_DIR"
    render_template "$CPREC_ROOT/infra/zookeeper/zoo.cfg" "$ZOOKEEPER_CONFIG" \
      "DATA_DIR=$ZOOKEEPER_STATE_DIR/data" "PORT=$ZOOKEEPER_PORT"
    log "starting ZooKeeper (127.0.0.1:$ZOOKEEPER_PORT)"
    # setsid and 9>&- as for Kafka (launch_kafka): outlive this script, never hold the infra lock.
    setsid java -Xmx"$ZOOKEEPER_HEAP" -Xms32m -XX:+UseSerialGC -Djava.awt.headless=true \
      -Dzookeeper.jmx.log4j.disable=true -Dorg.slf4j.simpleLogger.showDateTime=true \
      -cp "$ZOOKEEPER_CLASSPATH" org.apache.zookeeper.server.ZooKeeperServerMain "$ZOOKEEPER_CONFIG" \
      </dev/null >>"$ZOOKEEPER_LOG_DIR/zookeeper.log" 2>&1 9>&- &
    echo $! > "$ZOOKEEPER_PID_FILE"
  fi
  local deadline=$((SECONDS + 60))
  until zookeeper_serving; do
    zookeeper_pid >/dev/null || { tail -n 20 "$ZOOKEEPER_LOG_DIR/zookeeper.log" >&2; die "ZooKeeper exited during start-up"; }
    (( SECONDS < deadline )) || die "ZooKeeper not serving after 60s; see $ZOOKEEPER_LOG_DIR/"
    sleep 0.3
  done
}

# Renders node $KAFKA_NODE_ID's server.properties (0600): cluster.properties plus, when $1 is
# "auth", infra/kafka/auth.properties.
render_cluster_kafka_props() {
  local voters=() n
  for n in "${!CLUSTER_KAFKA_PORTS[@]}"; do voters+=("$((n + 1))@127.0.0.1:${CLUSTER_KAFKA_CONTROLLER_PORTS[n]}"); done
  mkdir -p "$KAFKA_STATE_DIR"
  (umask 077 && render_template "$CPREC_ROOT/infra/kafka/cluster.properties" "$KAFKA_PROPS" \
    "NODE_ID=$KAFKA_NODE_ID" "VOTERS=$(IFS=,; echo "${voters[*]}")" \
    "DATA_DIR=$KAFKA_DATA_DIR" "PORT=$KAFKA_PORT" "CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT")
  if [[ "$1" == auth ]]; then
    (umask 077 && render_template "$CPREC_ROOT/infra/kafka/auth.properties" "$KAFKA_PROPS.auth" \
      "PORT=$KAFKA_PORT" "CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT" "ADMIN_PASSWORD=$(secret KAFKA admin)")
    cat "$KAFKA_PROPS.auth" >> "$KAFKA_PROPS"
    rm -f "$KAFKA_PROPS.auth"
  fi
  chmod 600 "$KAFKA_PROPS"
}

# Formats (first start) and launches every node that is not running; waits until all listen.
start_kafka_cluster() {
  local n pid mode=open
  auth_enabled && mode=auth
  local -a launched=()
  for n in $(seq 1 "${#CLUSTER_KAFKA_PORTS[@]}"); do
    select_kafka_node "$n"
    if pid="$(kafka_pid)"; then
      echo "$pid" > "$KAFKA_PID_FILE"
      [[ "$(kafka_props_mode)" == "$mode" ]] || die "Kafka node $n is running $(kafka_props_mode) but CPREC_AUTH=$CPREC_AUTH \
asks for $mode; restart the cluster: bash infra/local/down --cluster && bash infra/local/up --cluster"
      log "Kafka node $n already running (pid $pid)"
      continue
    fi
    for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
      port_open "$port" && die "port $port is in use by another process ($(port_owner_hint "$port")); \
set CPREC_CLUSTER_KAFKA_PORTS / CPREC_CLUSTER_KAFKA_CONTROLLER_PORTS to free ports"
    done
    mkdir -p "$KAFKA_DATA_DIR" "$KAFKA_LOG_DIR"
    render_cluster_kafka_props "$mode"
    if [[ ! -f "$KAFKA_DATA_DIR/meta.properties" ]]; then
      if [[ ! -s "$KAFKA_CLUSTER_ID_FILE" ]]; then
        kafka_java kafka.tools.StorageTool random-uuid 2>>"$KAFKA_LOG_DIR/storage-tool.log" \
          | tr -d '[:space:]' > "$KAFKA_CLUSTER_ID_FILE"
      fi
      log "formatting Kafka node $n (cluster id $(cat "$KAFKA_CLUSTER_ID_FILE"))"
      local -a scram=()
      if [[ "$mode" == auth ]]; then
        for principal in "${PRINCIPALS[@]}"; do
          scram+=(--add-scram "SCRAM-SHA-256=[name=$principal,iterations=8192,password=$(secret KAFKA "$principal")]")
        done
      fi
      kafka_java_secret kafka.tools.StorageTool format --ignore-formatted \
        -t "$(cat "$KAFKA_CLUSTER_ID_FILE")" -c "$KAFKA_PROPS" "${scram[@]}" >>"$KAFKA_LOG_DIR/storage-tool.log" 2>&1 \
        || die "Kafka storage format failed; see $KAFKA_LOG_DIR/storage-tool.log"
      if [[ "$mode" == auth && "$n" == 1 ]]; then
        rm -f "$KAFKA_SCRAM_STATE"
        scram_record "${PRINCIPALS[@]}"
      fi
    elif [[ "$mode" == auth && " $(scram_missing | tr '\n' ' ') " == *" admin "* ]]; then
      die "the cluster's Kafka log was formatted without authentication (or with another admin password); \
start it afresh: bash infra/local/down --cluster && rm -rf $CLUSTER_DIR/kafka-* $KAFKA_CLUSTER_ID_FILE"
    fi
    launch_kafka
    launched+=("$n")
  done
  for n in "${launched[@]}"; do
    select_kafka_node "$n"
    wait_kafka_listening
  done
}

# Starts replica $CLICKHOUSE_REPLICA with config.xml plus config.d/cluster.xml (start_clickhouse).
start_clickhouse_replica() {
  mkdir -p "$CLICKHOUSE_STATE_DIR/config.d"
  (umask 077 && render_template "$CPREC_ROOT/infra/clickhouse/cluster.xml" "$CLICKHOUSE_STATE_DIR/config.d/cluster.xml" \
    "INTERSERVER_PORT=$CLICKHOUSE_INTERSERVER_PORT" "ZOOKEEPER_PORT=$ZOOKEEPER_PORT" "REPLICA=replica-$CLICKHOUSE_REPLICA" \
    "INTERSERVER_PASSWORD=$(cluster_secret CPREC_CLICKHOUSE_PASSWORD_INTERSERVER)" \
    "ZOOKEEPER_PASSWORD=$(cluster_secret CPREC_ZOOKEEPER_PASSWORD_CLICKHOUSE)")
  chmod 600 "$CLICKHOUSE_STATE_DIR/config.d/cluster.xml"
  if ! clickhouse_pid >/dev/null; then
    port_open "$CLICKHOUSE_INTERSERVER_PORT" && die "port $CLICKHOUSE_INTERSERVER_PORT is in use by another process \
($(port_owner_hint "$CLICKHOUSE_INTERSERVER_PORT")); set CPREC_CLUSTER_CLICKHOUSE_INTERSERVER_PORTS to free ports"
  fi
  log "ClickHouse replica $CLICKHOUSE_REPLICA:"
  start_clickhouse
}

write_cluster_env() {
  mkdir -p "$CLUSTER_DIR"
  cat > "$CLUSTER_ENV_FILE.tmp" <<EOT
# The cluster profile's endpoints (infra/local/up --cluster); no secrets here.
# Load with: set -a && . $CLUSTER_ENV_FILE && set +a (and the secrets file as for the single node).
CPREC_INFRA_PROFILE=cluster
CPREC_KAFKA_BROKERS=$(cluster_kafka_brokers)
CPREC_KAFKA_REPLICATION_FACTOR=${#CLUSTER_KAFKA_PORTS[@]}
CPREC_CLICKHOUSE_URL=http://127.0.0.1:${CLUSTER_CLICKHOUSE_HTTP_PORTS[0]}
CPREC_CLICKHOUSE_REPLICAS=$(cluster_clickhouse_urls)
EOT
  mv -f "$CLUSTER_ENV_FILE.tmp" "$CLUSTER_ENV_FILE"
}

cluster_up() {
  require_installed
  mkdir -p "$CLUSTER_DIR" "$CLUSTER_LOG_DIR"
  if auth_enabled; then
    ensure_secrets
    ensure_cluster_secrets
  fi
  start_zookeeper
  local n
  for n in $(seq 1 "${#CLUSTER_CLICKHOUSE_HTTP_PORTS[@]}"); do
    select_clickhouse_node "$n"
    start_clickhouse_replica
  done
  start_kafka_cluster
  select_kafka_node 1
  write_cluster_env
  export CPREC_KAFKA_BROKERS CPREC_KAFKA_REPLICATION_FACTOR CPREC_CLICKHOUSE_URL CPREC_CLICKHOUSE_REPLICAS
  CPREC_KAFKA_BROKERS="$(cluster_kafka_brokers)"
  CPREC_KAFKA_REPLICATION_FACTOR="${#CLUSTER_KAFKA_PORTS[@]}"
  CPREC_CLICKHOUSE_URL="http://127.0.0.1:${CLUSTER_CLICKHOUSE_HTTP_PORTS[0]}"
  CPREC_CLICKHOUSE_REPLICAS="$(cluster_clickhouse_urls)"
  update_kafka_scram
  log "bootstrapping: database '$CLICKHOUSE_DB' on every replica, migrations (replicated tables), Kafka topics (RF ${#CLUSTER_KAFKA_PORTS[@]})"
  run_bootstrap up --timeout-ms "$((KAFKA_START_TIMEOUT * 1000))" --brokers "${#CLUSTER_KAFKA_PORTS[@]}" \
    || die "bootstrap failed; logs in $CLUSTER_LOG_DIR/"
  cat <<EOT
cprec infra (cluster profile) is up ($((SECONDS - started_at))s):
  Kafka       $CPREC_KAFKA_BROKERS   (KRaft, RF ${#CLUSTER_KAFKA_PORTS[@]}, min.insync.replicas 2)
  ClickHouse  $CPREC_CLICKHOUSE_REPLICAS   (replicas of shard 01; services use CPREC_CLICKHOUSE_URL=$CPREC_CLICKHOUSE_URL)
  ZooKeeper   127.0.0.1:$ZOOKEEPER_PORT   pid $(zookeeper_pid)
  Endpoints   $CLUSTER_ENV_FILE   (set -a && . $CLUSTER_ENV_FILE && set +a)
  Auth        $(if auth_enabled; then echo "on: secrets in $SECRETS_FILE"; else echo "off (CPREC_AUTH=off)"; fi)
  Stop with   bash infra/local/down --cluster   (or CPREC_INFRA_PROFILE=cluster npm run infra:down)
EOT
}

cluster_down() {
  local n pid
  for n in $(seq 1 "${#CLUSTER_KAFKA_PORTS[@]}"); do
    select_kafka_node "$n"
    if pid="$(kafka_pid)"; then
      log "stopping Kafka node $n (pid $pid)"
      # In parallel: a broker's controlled shutdown waits for the others to take its partitions.
      stop_pid "$pid" 60 "Kafka node $n" &
    fi
  done
  wait
  for n in $(seq 1 "${#CLUSTER_KAFKA_PORTS[@]}"); do select_kafka_node "$n"; rm -f "$KAFKA_PID_FILE"; done
  for n in $(seq 1 "${#CLUSTER_CLICKHOUSE_HTTP_PORTS[@]}"); do
    select_clickhouse_node "$n"
    if pid="$(clickhouse_pid)"; then
      log "stopping ClickHouse replica $n (pid $pid)"
      stop_pid "$pid" 60 "ClickHouse replica $n"
    fi
    rm -f "$CLICKHOUSE_PID_FILE"
  done
  if pid="$(zookeeper_pid)"; then
    log "stopping ZooKeeper (pid $pid)"
    stop_pid "$pid" 30 ZooKeeper
  fi
  rm -f "$ZOOKEEPER_PID_FILE"
  log "cluster stopped; data kept in $CLUSTER_DIR"
}

cluster_status() {
  local n pid healthy=1 listening=0
  if pid="$(zookeeper_pid)" && zookeeper_serving; then
    echo "ZooKeeper     healthy    127.0.0.1:$ZOOKEEPER_PORT  (pid $pid)"
  else
    echo "ZooKeeper     DOWN       127.0.0.1:$ZOOKEEPER_PORT"
    healthy=0
  fi
  for n in $(seq 1 "${#CLUSTER_CLICKHOUSE_HTTP_PORTS[@]}"); do
    select_clickhouse_node "$n"
    if pid="$(clickhouse_pid)" && clickhouse_ping; then
      echo "ClickHouse-$n  healthy    $(clickhouse_url)  (tcp $CLICKHOUSE_TCP_PORT, interserver $CLICKHOUSE_INTERSERVER_PORT, pid $pid)"
    else
      echo "ClickHouse-$n  DOWN       $(clickhouse_url)"
      healthy=0
    fi
  done
  for n in $(seq 1 "${#CLUSTER_KAFKA_PORTS[@]}"); do
    select_kafka_node "$n"
    if pid="$(kafka_pid)" && port_open "$KAFKA_PORT"; then
      echo "Kafka-$n       listening  127.0.0.1:$KAFKA_PORT  (controller $KAFKA_CONTROLLER_PORT, pid $pid)"
      listening=$((listening + 1))
    else
      echo "Kafka-$n       DOWN       127.0.0.1:$KAFKA_PORT"
      healthy=0
    fi
  done
  if (( listening > 0 )) && have_node_modules; then
    if detail="$(CPREC_KAFKA_BROKERS="$(cluster_kafka_brokers)" run_bootstrap kafka-health --timeout-ms 5000 2>&1)"; then
      echo "Kafka         $detail"
    else
      echo "Kafka         UNHEALTHY  metadata request failed: $detail"
      healthy=0
    fi
  fi
  (( healthy )) && return 0 || return 1
}
