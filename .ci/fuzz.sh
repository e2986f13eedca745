#!/usr/bin/env bash
# An outside fuzzer against the live API: schemathesis (PyPI) reads /api/v1/openapi.json of a
# debug server and sends generated requests to every operation, logged in as each role in
# turn (admin, organiser, canvasser, police), FUZZ_EXAMPLES (20) examples per operation and
# phase. Checks: no 5xx (not_a_server_error), every status code documented
# (status_code_conformance), every answer's body matching its documented schema
# (response_schema_conformance) and content type (content_type_conformance).
# Exits non-zero when anything fails. Reports (JUnit) go to FUZZ_REPORT_DIR (a temp folder).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${DOORSTEP_BIN:-${CARGO_TARGET_DIR:-target}/debug/doorstep}"
EXAMPLES="${FUZZ_EXAMPLES:-20}"
REPORTS="${FUZZ_REPORT_DIR:-$(mktemp -d)}"
[ -x "$BIN" ] || cargo build --bin doorstep
command -v schemathesis >/dev/null ||
  pip install --quiet --disable-pip-version-check 'schemathesis>=4,<5'

WORK="$(mktemp -d)"
PASSWORD="fuzzing password of some length"
# The server gets only its own settings (no DOORSTEP_BIN and the like from here).
server_env=(
  env -u DOORSTEP_BIN
  DOORSTEP_DATABASE__URL="sqlite://$WORK/doorstep.db"
  DOORSTEP_SERVER__DATA_DIR="$WORK"
  DOORSTEP_SERVER__BIND=127.0.0.1:0
  DOORSTEP_SERVER__WORKERS=2
  DOORSTEP_SERVER__METRICS_TOKEN=fuzz-metrics-token
  DOORSTEP_AUTH__ACCESS_TTL_S=7200
  # The fuzzer's wrong passwords must not lock the roles out (429s are still documented).
  DOORSTEP_AUTH__LOGIN_MAX_PER_ADDRESS=1000000
  DOORSTEP_AUTH__LOGIN_MAX_FAILURES_PER_EMAIL=1000000
  DOORSTEP_AUTH__LOGIN_SLOW_AFTER_FAILURES=1000000
  DOORSTEP_LIMITS__MIN_CHECKIN_INTERVAL_S=1
  RUST_LOG="${RUST_LOG:-warn}"
)
"${server_env[@]}" "$BIN" admin create --email admin@fuzz.example.org --password "$PASSWORD" >/dev/null
"${server_env[@]}" "$BIN" serve >"$WORK/stdout" 2>"$WORK/server.log" &
SERVER=$!
stop_server() {
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
}
trap stop_server EXIT
for _ in $(seq 1 100); do
  grep -q "listening on" "$WORK/stdout" 2>/dev/null && break
  sleep 0.1
done
BASE="$(sed -n 's/^doorstep listening on //p' "$WORK/stdout")"
[ -n "$BASE" ] || { cat "$WORK/server.log"; exit 1; }

api() { # METHOD PATH TOKEN [JSON]
  curl -sf -X "$1" "$BASE$2" -H "authorization: Bearer $3" \
    -H 'content-type: application/json' ${4:+--data "$4"}
}
login() {
  curl -sf "$BASE/api/v1/auth/login" -H 'content-type: application/json' \
    --data "{\"email\":\"$1\",\"password\":\"$PASSWORD\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
id_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }

ADMIN="$(login admin@fuzz.example.org)"
ORG="$(api POST /api/v1/orgs "$ADMIN" '{"name":"Fuzz Party"}' | id_of)"
new_user() { # ROLE EMAIL [ORG]
  api POST /api/v1/users "$ADMIN" "{\"email\":\"$2\",\"password\":\"$PASSWORD\",\
\"display_name\":\"Fuzz $1\",\"role\":\"$1\"${3:+,\"org_id\":\"$3\"}}" | id_of
}
new_user organiser organiser@fuzz.example.org "$ORG" >/dev/null
new_user canvasser canvasser@fuzz.example.org "$ORG" >/dev/null
POLICE_ID="$(new_user police police@fuzz.example.org)"
api POST "/api/v1/orgs/$ORG/police-contacts" "$ADMIN" "{\"user_id\":\"$POLICE_ID\"}" >/dev/null
# Something to look at: an outing of the canvasser.
CANVASSER="$(login canvasser@fuzz.example.org)"
api POST /api/v1/outings "$CANVASSER" \
  '{"checkin_interval_s":900,"start_location":{"lat":51.5,"lon":-0.12,"accuracy_m":8}}' >/dev/null

status=0
for role in admin organiser canvasser police; do
  # Logged in again for each role: the fuzzer may have ended earlier logins (logout,
  # password and TOTP operations with generated bodies).
  token="$(login "$role@fuzz.example.org")"
  echo "== schemathesis as $role"
  schemathesis run "$BASE/api/v1/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance \
    --max-examples "$EXAMPLES" \
    --seed 1 \
    --workers 1 \
    --request-timeout 10 \
    --exclude-path /api/v1/watch/stream \
    --report junit --report-junit-path "$REPORTS/$role.xml" \
    --no-color || status=1
done
if [ "$status" != 0 ]; then
  echo "schemathesis found failures; server log: $WORK/server.log, reports: $REPORTS"
fi
exit "$status"
