#!/bin/sh
# kubemark-supervise NAME CONFIG_DIR
#
# Runs one master component as CONFIG_DIR/master.env describes it and starts it again whenever it
# exits, until this script gets SIGTERM; then it stops the component and exits. Upstream
# kubemark's masters start each component once, so a crashed component stays down and the run is
# silently wrong. Used where systemd does not run; written by kubemark, safe to read.
set -u
# Arguments are split on blanks below; no glob in them may expand to the files of the cwd.
set -f
name=$1
config=$2
. "$config/master.env"
var=$(printf '%s' "$name" | tr 'a-z-' 'A-Z_')
eval "bin=\${${var}_BIN}; args=\${${var}_ARGS}"
log="$LOG_DIR/$name.log"
echo $$ > "$RUN_DIR/$name.supervisor.pid"
child=""
stopping=0
# A zombie is not alive: it has exited and only waits to be reaped.
alive() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)" != Z ]; }
stop() {
  stopping=1
  if [ -n "$child" ]; then
    kill -TERM "$child" 2>/dev/null
    # The same grace the local master gives, then SIGKILL.
    i=0
    while alive "$child" && [ "$i" -lt $((STOP_GRACE_SECONDS * 10)) ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$child" 2>/dev/null
    wait "$child"
  fi
  rm -f "$RUN_DIR/$name.pid" "$RUN_DIR/$name.supervisor.pid"
  exit 0
}
trap stop TERM INT
restarts=0
echo "$restarts" > "$RUN_DIR/$name.restarts"
while :; do
  # Arguments are generated without blanks; splitting them here is intended.
  # shellcheck disable=SC2086
  "$bin" $args >>"$log" 2>&1 &
  child=$!
  echo "$child" > "$RUN_DIR/$name.pid"
  wait "$child"
  status=$?
  [ "$stopping" = 1 ] && exit 0
  restarts=$((restarts + 1))
  echo "$restarts" > "$RUN_DIR/$name.restarts"
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) kubemark-supervise: $name exited with status $status; restart $restarts in 2s" >>"$log"
  sleep 2
done
