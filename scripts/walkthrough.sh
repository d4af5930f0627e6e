#!/usr/bin/env bash
# A curl walkthrough of the Task API: sign up (or in), then create, list, get, toggle, update,
# PUT (which keeps what it does not send) and delete a task; then a list with two tasks and a
# subtask in it, a move with after_id, the list's page in manual order, the subtree, and
# deleting the list (its tasks go with it). Every step checks its status code; the script
# exits non-zero on the first surprise.
#
#   BASE_URL   API root (default http://127.0.0.1:8000)
#   TOKEN      use this bearer token instead of signing up
#   EMAIL, PASSWORD   sign in with these (signing up first if the account does not exist)
#
# Needs curl and python3 (for reading JSON).
set -euo pipefail

BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
BASE_URL="${BASE_URL%/}"

json() {  # json '<python expression over d>' < body
  python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

expect() {  # expect '<python expression over d>' VALUE WHAT: check the last body
  [[ $(json "$1" <<<"$BODY") == "$2" ]] || { echo "$3: got $(json "$1" <<<"$BODY")" >&2; exit 1; }
}

# call METHOD PATH EXPECTED_STATUS [JSON_BODY]; leaves the body in $BODY
call() {
  local method=$1 path=$2 expected=$3 body=${4:-}
  local args=(-sS -o /tmp/walkthrough.$$ -w '%{http_code}' -X "$method" "$BASE_URL$path")
  [[ -n "${TOKEN:-}" ]] && args+=(-H "Authorization: Bearer $TOKEN")
  [[ -n "$body" ]] && args+=(-H 'Content-Type: application/json' -d "$body")
  local status
  status=$(curl "${args[@]}")
  BODY=$(cat /tmp/walkthrough.$$)
  rm -f /tmp/walkthrough.$$
  printf '%-6s %-32s -> %s\n' "$method" "$path" "$status"
  if [[ "$status" != "$expected" ]]; then
    echo "expected $expected, got $status: $BODY" >&2
    exit 1
  fi
}

if [[ -z "${TOKEN:-}" ]]; then
  EMAIL="${EMAIL:-walkthrough-$(date +%s)-$RANDOM@example.com}"
  PASSWORD="${PASSWORD:-walkthrough-password}"
  status=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$BASE_URL/api/auth/login" \
    -H 'Content-Type: application/json' \
    -d "{\"email\": \"$EMAIL\", \"password\": \"$PASSWORD\"}")
  if [[ "$status" == 200 ]]; then
    call POST /api/auth/login 200 "{\"email\": \"$EMAIL\", \"password\": \"$PASSWORD\"}"
  else
    call POST /api/auth/register 201 "{\"email\": \"$EMAIL\", \"password\": \"$PASSWORD\"}"
  fi
  TOKEN=$(json 'd["data"]["access_token"]' <<<"$BODY")
fi

call GET /api/auth/me 200
echo "signed in as $(json 'd["data"]["id"]' <<<"$BODY")"

call POST /api/tasks 201 '{"title": "Buy milk", "description": "2 litres"}'
ID=$(json 'd["data"]["id"]' <<<"$BODY")

call GET /api/tasks 200
json '"  listed: " + ", ".join(str(t["id"]) for t in d["data"])' <<<"$BODY"

call GET "/api/tasks/$ID" 200

call PATCH "/api/tasks/$ID/complete" 200
[[ $(json 'd["data"]["completed"]' <<<"$BODY") == True ]] || { echo "toggle did not complete" >&2; exit 1; }

call PATCH "/api/tasks/$ID/complete" 200 '{"completed": false}'
[[ $(json 'd["data"]["completed"]' <<<"$BODY") == False ]] || { echo "set did not reopen" >&2; exit 1; }

call PATCH "/api/tasks/$ID" 200 '{"title": "Buy oat milk"}'
[[ $(json 'd["data"]["title"]' <<<"$BODY") == "Buy oat milk" ]] || { echo "patch lost" >&2; exit 1; }

call PUT "/api/tasks/$ID" 200 '{"title": "Buy bread", "completed": true}'
[[ $(json 'd["data"]["description"]' <<<"$BODY") == "2 litres" ]] || { echo "put lost description" >&2; exit 1; }

call GET "/api/tasks?status=completed&sort=title" 200

call DELETE "/api/tasks/$ID" 204
call GET "/api/tasks/$ID" 404

# Lists, subtasks and manual order.
call POST /api/lists 201 '{"name": "Groceries"}'
LIST=$(json 'd["data"]["id"]' <<<"$BODY")
call POST /api/tasks 201 "{\"title\": \"Milk\", \"list_id\": $LIST}"
MILK=$(json 'd["data"]["id"]' <<<"$BODY")
call POST /api/tasks 201 "{\"title\": \"Bread\", \"list_id\": $LIST}"
BREAD=$(json 'd["data"]["id"]' <<<"$BODY")
call POST /api/tasks 201 "{\"title\": \"Oat milk\", \"parent_id\": $MILK}"
OAT=$(json 'd["data"]["id"]' <<<"$BODY")
expect 'd["data"]["list_id"]' "$LIST" "a subtask is in its parent's list"

PAGE="/api/tasks?list_id=$LIST&parent_id=none&sort=position"
call GET "$PAGE" 200
expect '[t["id"] for t in d["data"]]' "[$BREAD, $MILK]" "a new top-level task goes first"
call POST "/api/tasks/$BREAD/move" 200 "{\"after_id\": $MILK}"
call GET "$PAGE" 200
expect '[t["id"] for t in d["data"]]' "[$MILK, $BREAD]" "move after_id"
expect 'd["data"][0]["subtask_count"]' 1 "subtask count"

call GET "/api/tasks/$MILK/subtree" 200
expect '[(t["id"], t["parent_id"]) for t in d["data"]]' "[($MILK, None), ($OAT, $MILK)]" "subtree"

call DELETE "/api/lists/$LIST" 204
call GET "/api/tasks/$OAT" 404
call GET "/api/lists/$LIST" 404

echo "walkthrough ok"
