#!/usr/bin/env bash
# Fuzzes a live palaver against its own OpenAPI document with schemathesis.
#
#   .ci/schemathesis.sh [PALAVER_BINARY]
#
# Starts palaver (the fixture bot, API on, token auth, metrics, REST and callback
# channels) on a free loopback port, runs schemathesis with a bounded number of examples
# per operation and every check but `not_a_server_error`, which is replaced by the
# narrower `no_unintended_server_error` of .ci/schemathesis_hooks.py (Rasa's documented
# 500s pass, any other 5xx fails). Fails on any failed check.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${1:-${CARGO_TARGET_DIR:-target}/debug/palaver}"
[ -x "$BIN" ] || { echo "no palaver binary at $BIN (run cargo build first)"; exit 1; }
VENV="${PALAVER_SCHEMATHESIS_VENV:-$HOME/.cache/palaver-schemathesis-venv}"
ST_VERSION="4.32.5"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$ST_VERSION"; then
  echo "== installing schemathesis $ST_VERSION into $VENV"
  "$VENV/bin/pip" install --quiet "schemathesis==$ST_VERSION"
fi

WORK="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export PALAVER_ST_TOKEN="st-$RANDOM$RANDOM"
cp -r tests/fixtures/bot "$WORK/bot"
cat > "$WORK/bot/endpoints.yml" <<YAML
tracker_store:
  type: SQL
  dialect: sqlite
  db: $WORK/conversations.db
YAML
# The callback channel posts the bot's messages back to palaver itself (a 405 there is
# logged and ignored), so that no other server is needed.
cat > "$WORK/bot/credentials.yml" <<YAML
rest:
socketio:
callback:
  url: "http://127.0.0.1:$PORT/health/live"
YAML

"$BIN" run "$WORK/bot" --port "$PORT" --interface 127.0.0.1 --enable-api \
  --auth-token "$PALAVER_ST_TOKEN" --metrics >"$WORK/palaver.log" 2>&1 &
PID=$!
cleanup() {
  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$PORT/" >/dev/null 2>&1; then break; fi
  sleep 0.1
done

echo "== schemathesis $ST_VERSION against palaver on port $PORT"
status=0
# DELETE /model is left out: it unloads the bot, and every later request would only
# see 409 (it is covered by tests/ops_metrics.rs and tests/dialogue.rs).
SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH=.ci \
  "$VENV/bin/st" --config-file .ci/schemathesis.toml run \
  "http://127.0.0.1:$PORT/openapi.json" \
  --exclude-checks not_a_server_error \
  --max-examples "${PALAVER_SCHEMATHESIS_EXAMPLES:-20}" \
  --seed "${PALAVER_SCHEMATHESIS_SEED:-8}" \
  --exclude-method DELETE \
  --workers 1 \
  --max-time "${PALAVER_SCHEMATHESIS_MAX_TIME:-170}" \
  --request-timeout 20 \
  --no-color || status=$?
if [ "$status" -ne 0 ]; then
  echo "== palaver's log (last 80 lines)"
  tail -n 80 "$WORK/palaver.log"
fi
exit "$status"
