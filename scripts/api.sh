#!/usr/bin/env bash
# One curl command per Task API route.
#
#   scripts/api.sh COMMAND [ARGS...]
#
# Environment:
#   BASE_URL   API root (default http://127.0.0.1:8000)
#   TOKEN      bearer token, sent when set (get one with `login`, `register` or
#              `python -m backend token USER_ID --dev`)
#   FOLLOW_SECONDS  `follow` stops after this many seconds (default: when the server ends it)
#   IDEMPOTENCY_KEY, IF_MATCH, IF_NONE_MATCH
#              sent as the Idempotency-Key, If-Match and If-None-Match headers when set
#              (e.g. IF_MATCH='"42-3"' scripts/api.sh update 42 '{"title": "x"}')
#
# Prints the response body to stdout (indented when stdout is a terminal) and
# "HTTP <status> <METHOD> <path>" to stderr, followed by "ETag: <tag>" and
# "Idempotent-Replayed: true" lines when the response has them. Exits 0 on a 2xx/3xx answer, 1 on an HTTP error
# (4xx/5xx; the error envelope is still printed), 2 on a usage error, and curl's own code
# when the server cannot be reached. Needs curl and python3.
#
# Bodies: create, replace, update, bulk, move, the list and child commands take a JSON object; create
# and create-list also take a bare title / name; move-list without one puts the list last.
#
# Example:
#   export TOKEN=$(scripts/api.sh login ada@example.com 'correct horse battery staple' \
#     | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["access_token"])')
#   scripts/api.sh create 'Buy milk'
#   scripts/api.sh list 'status=pending&sort=title'
#   scripts/api.sh create-list Groceries
#   scripts/api.sh list 'list_id=7&parent_id=none&sort=position'   # a list's top level, in order
#   scripts/api.sh create-filter '{"name": "Urgent", "query": {"priority": ["high"]}}'
#   scripts/api.sh list 'filter=3&status=completed'                 # a saved filter, overridden
#   scripts/api.sh move 42 '{"after_id": 41}'
#
# The route table (tests/api/test_api_script_table.py checks that every route the API serves
# has a command, here or by its operation id, below; tests/scripts/test_api_script.py runs each
# against a live server):
#
# route: GET    /health                         health
# route: GET    /health/ready                   ready
# route: POST   /api/auth/register              register EMAIL PASSWORD [NAME]
# route: POST   /api/auth/login                 login EMAIL PASSWORD
# route: POST   /api/auth/token                 oauth-token EMAIL PASSWORD
# route: GET    /api/auth/me                    me
# route: DELETE /api/auth/me                    delete-me
# route: POST   /api/auth/logout-all            logout-all
# route: GET    /api/tasks                      list [QUERY]
# route: POST   /api/tasks                      create TITLE|JSON
# route: GET    /api/tasks/stats                stats
# route: POST   /api/tasks/parse                parse TEXT|JSON
# route: POST   /api/tasks/quick                quick TEXT|JSON
# route: GET    /api/tasks/changes              changes [CURSOR]
# route: GET    /api/changes/stream             follow [CURSOR]
# route: POST   /api/changes/stream/tickets     stream-ticket
# route: POST   /api/tasks/bulk                 bulk JSON
# route: DELETE /api/tasks/completed            clear-completed
# route: GET    /api/tasks/{task_id}            get ID
# route: PUT    /api/tasks/{task_id}            replace ID JSON
# route: PATCH  /api/tasks/{task_id}            update ID JSON
# route: DELETE /api/tasks/{task_id}            delete ID
# route: PATCH  /api/tasks/{task_id}/complete   complete ID [true|false]
# route: GET    /api/tasks/{task_id}/occurrences occurrences ID [COUNT]
# route: POST   /api/tasks/{task_id}/move       move ID JSON
# route: GET    /api/tasks/{task_id}/subtree    subtree ID
# route: GET    /api/tasks/{task_id}/{children} children ID PATH [QUERY]
# route: POST   /api/tasks/{task_id}/{children} add-child ID PATH JSON
# route: GET    /api/tasks/{task_id}/{children}/{child_id} child ID PATH ID
# route: PATCH  /api/tasks/{task_id}/{children}/{child_id} update-child ID PATH ID JSON
# route: DELETE /api/tasks/{task_id}/{children}/{child_id} delete-child ID PATH ID
# route: POST   /api/tasks/{task_id}/attachments upload ID FILE
# route: GET    /api/tasks/{task_id}/attachments/{attachment_id}/download download ID ID OUT
# route: GET    /api/attachments/limits         attachment-limits
# route: GET    /api/export                     export OUT
# route: POST   /api/imports                    import FILE [SOURCE] [true|false]
# route: GET    /api/lists                      lists
# route: POST   /api/lists                      create-list NAME|JSON
# route: GET    /api/lists/{list_id}            get-list ID
# route: PUT    /api/lists/{list_id}            replace-list ID JSON
# route: PATCH  /api/lists/{list_id}            update-list ID JSON
# route: POST   /api/lists/{list_id}/move       move-list ID [JSON]
# route: DELETE /api/lists/{list_id}            delete-list ID
# route: GET    /api/lists/{list_id}/members    members ID
# route: PATCH  /api/lists/{list_id}/members/{user_id} update-member ID USER_ID JSON
# route: DELETE /api/lists/{list_id}/members/{user_id} remove-member ID USER_ID
# route: POST   /api/lists/{list_id}/transfer   transfer-list ID USER_ID
# route: POST   /api/lists/{list_id}/invitations invite ID JSON
# route: GET    /api/lists/{list_id}/invitations invitations ID
# route: DELETE /api/lists/{list_id}/invitations/{invitation_id} revoke-invitation ID ID
# route: POST   /api/invitations/accept         accept-invitation TOKEN
# route: GET    /api/lists/{list_id}/activity   list-activity ID [QUERY]
# route: GET    /api/activity                   activity [QUERY]
# route: POST   /api/activity/{event_id}/undo   undo ID
# route: GET    /api/filters                    filters
# route: POST   /api/filters                    create-filter JSON
# route: GET    /api/filters/{filter_id}        get-filter ID
# route: PUT    /api/filters/{filter_id}        replace-filter ID JSON
# route: PATCH  /api/filters/{filter_id}        update-filter ID JSON
# route: DELETE /api/filters/{filter_id}        delete-filter ID
# route: GET    /api/trash                      trash [QUERY]
# route: POST   /api/trash/{trash_id}/restore   restore ID
# route: DELETE /api/trash/{trash_id}           purge ID
# route: POST   /api/calendar-feeds             create-feed [JSON]
# route: GET    /api/calendar-feeds             feeds
# route: POST   /api/calendar-feeds/{feed_id}/rotate rotate-feed ID
# route: DELETE /api/calendar-feeds/{feed_id}   revoke-feed ID
# route: POST   /api/app-passwords              create-app-password JSON
# route: GET    /api/app-passwords              app-passwords
# route: DELETE /api/app-passwords/{app_password_id} revoke-app-password ID
# route: GET    /api/push/public-key            push-key
# route: POST   /api/push-subscriptions         subscribe-push JSON
# route: GET    /api/push-subscriptions         push-subscriptions
# route: DELETE /api/push-subscriptions/{push_subscription_id} unsubscribe-push ID
# route: GET    /api/notification-settings      notification-settings
# route: PATCH  /api/notification-settings      update-notification-settings JSON
# route: GET    /api/notification-settings/confirm confirm-email USER_ID TOKEN
# route: POST   /api/notification-settings/unsubscribe unsubscribe-email USER_ID TOKEN
# route: GET    /api/calendar/{token}.ics       feed TOKEN
# route: POST   /api/chat                       chat MESSAGE [CONVERSATION_ID]
# route: GET    /api/conversations              conversations [QUERY]
# route: GET    /api/conversations/{conversation_id}/messages messages ID [QUERY]
# route: DELETE /api/conversations/{conversation_id} delete-conversation ID
# route: POST   /api/chatkit                    call POST /api/chatkit JSON
#
# A task's children (`CHILDREN` in backend/models/task_children.py) share five commands: PATH
# is the child's collection under /api/tasks/ID/ (`comments`), e.g. `children 42 comments`,
# `add-child 42 comments '{"body": "Done"}'`, `update-child 42 comments 7 JSON`. Comments keep
# their own names too: comments ID [QUERY], comment ID ID, add-comment ID JSON,
# update-comment ID ID JSON, delete-comment ID ID.
#
# chat-stream MESSAGE [CONVERSATION_ID] sends the chat turn with Accept: text/event-stream and
# prints the server-sent events as they arrive (specs/chat.md). /api/chatkit takes ChatKit's
# request bodies, e.g. '{"type": "threads.list", "params": {}}' (specs/chat.md, "ChatKit").
#
# The published contract's /api/{user_id}/... paths (the tasks', lists' and chat's) answer like
# their /api/... routes above when USER_ID is the token's subject (and 404 otherwise); reach
# them with `call`, e.g. `call GET /api/USER_ID/tasks/ID`, `call POST /api/USER_ID/lists JSON`.
#
# A route with no line here is run by its operation id (specs/openapi.json): scripts/api.sh
# OPERATION_ID [VALUE...] [JSON|QUERY], its path's values in order (`duplicateTask 42`).
# Any other request: scripts/api.sh call METHOD PATH [JSON]
set -euo pipefail

BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
BASE_URL="${BASE_URL%/}"

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

need() {  # need COUNT "$@": at least COUNT arguments after the command
  local count=$1
  shift
  if (($# < count)); then
    usage
  fi
}

json_string() {  # a shell string as a JSON string literal
  python3 -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$1"
}

chat_body() {  # chat_body MESSAGE [CONVERSATION_ID]: a chat request's JSON
  if [[ -n "${2:-}" ]]; then
    echo "{\"message\": $(json_string "$1"), \"conversation_id\": $2}"
  else
    echo "{\"message\": $(json_string "$1")}"
  fi
}

# request METHOD PATH [JSON_BODY | --form ARGS...]
request() {
  local method=$1 path=$2
  shift 2
  BODY_FILE=$(mktemp)
  HEADER_FILE=$(mktemp)
  trap 'rm -f "$BODY_FILE" "$HEADER_FILE"' EXIT
  local body_file=$BODY_FILE
  local args=(-sS -o "$body_file" -D "$HEADER_FILE" -w '%{http_code}' -X "$method" "$BASE_URL$path")
  if [[ -n "${TOKEN:-}" ]]; then
    args+=(-H "Authorization: Bearer $TOKEN")
  fi
  if [[ -n "${IDEMPOTENCY_KEY:-}" ]]; then
    args+=(-H "Idempotency-Key: $IDEMPOTENCY_KEY")
  fi
  if [[ -n "${IF_MATCH:-}" ]]; then
    args+=(-H "If-Match: $IF_MATCH")
  fi
  if [[ -n "${IF_NONE_MATCH:-}" ]]; then
    args+=(-H "If-None-Match: $IF_NONE_MATCH")
  fi
  if [[ "${1:-}" == --file ]]; then  # a multipart upload: a part `file`, then form fields
    args+=(-F "file=@$2")
    for field in "${@:3}"; do
      args+=(-F "$field")
    done
  elif [[ "${1:-}" == --save ]]; then  # the body to a file, following a redirect (S3)
    body_file=$2
    args[2]=$body_file
    args+=(-L)
  elif [[ "${1:-}" == --form ]]; then
    shift
    for field in "$@"; do
      args+=(--data-urlencode "$field")
    done
  elif [[ $# -gt 0 ]]; then
    args+=(-H 'Content-Type: application/json' --data-binary "$1")
  fi
  local status
  status=$(curl "${args[@]}")
  echo "HTTP $status $method $path" >&2
  # Header names are case-insensitive; print them in one spelling, values as sent.
  tr -d '\r' <"$HEADER_FILE" | sed -n -e 's/^[Ee][Tt][Aa][Gg]: */ETag: /p' \
    -e 's/^[Ii]dempotent-[Rr]eplayed: */Idempotent-Replayed: /p' >&2
  if [[ "$body_file" != "$BODY_FILE" ]] && ((status < 400)); then
    echo "saved to $body_file" >&2
  elif [[ -s "$body_file" ]]; then
    if [[ -t 1 ]] && python3 -m json.tool "$body_file" >/dev/null 2>&1; then
      python3 -m json.tool "$body_file"
    else
      cat "$body_file"
      echo
    fi
  fi
  if ((status >= 400)); then
    exit 1
  fi
}

command=${1:-}
if [[ -z "$command" || "$command" == -h || "$command" == --help || "$command" == help ]]; then
  usage
fi
shift

# Comments' own names: the child commands with PATH `comments`.
case "$command" in
  comments | comment | add-comment | update-comment | delete-comment)
    need 1 "$@"
    if [[ "$command" == comments ]]; then
      command=children
    else
      command=${command%comment}child  # comment -> child, add-comment -> add-child, ...
    fi
    set -- "$1" comments "${@:2}"
    ;;
esac

case "$command" in
  health) request GET /health ;;
  ready) request GET /health/ready ;;
  upload)
    need 2 "$@"
    request POST "/api/tasks/$1/attachments" --file "$2"
    ;;
  download)
    need 3 "$@"
    request GET "/api/tasks/$1/attachments/$2/download" --save "$3"
    ;;
  attachment-limits) request GET /api/attachments/limits ;;
  export)
    need 1 "$@"
    request GET /api/export --save "$1"
    ;;
  import)  # FILE [SOURCE: auto] [DRY_RUN: false]
    need 1 "$@"
    request POST /api/imports --file "$1" "source=${2:-auto}" "dry_run=${3:-false}"
    ;;
  register)
    need 2 "$@"
    body="{\"email\": $(json_string "$1"), \"password\": $(json_string "$2")"
    if [[ -n "${3:-}" ]]; then
      body+=", \"name\": $(json_string "$3")"
    fi
    request POST /api/auth/register "$body}"
    ;;
  login)
    need 2 "$@"
    request POST /api/auth/login "{\"email\": $(json_string "$1"), \"password\": $(json_string "$2")}"
    ;;
  oauth-token)
    need 2 "$@"
    request POST /api/auth/token --form grant_type=password "username=$1" "password=$2"
    ;;
  me) request GET /api/auth/me ;;
  delete-me) request DELETE /api/auth/me ;;
  logout-all) request POST /api/auth/logout-all ;;
  list) request GET "/api/tasks${1:+?$1}" ;;
  create)
    need 1 "$@"
    if [[ "$1" == \{* ]]; then
      request POST /api/tasks "$1"
    else
      request POST /api/tasks "{\"title\": $(json_string "$1")}"
    fi
    ;;
  stats) request GET /api/tasks/stats ;;
  parse | quick)
    # Quick add: a line as typed ("Buy milk tomorrow 5pm #Home @errands !high"), previewed
    # (parse) or created (quick); a JSON body for time_zone, now, list_id, ignore.
    need 1 "$@"
    if [[ "$1" == \{* ]]; then
      request POST "/api/tasks/$command" "$1"
    else
      request POST "/api/tasks/$command" "{\"text\": $(json_string "$1")}"
    fi
    ;;
  changes) request GET "/api/tasks/changes${1:+?cursor=$1}" ;;
  follow)
    # The live change stream, printed as it comes (Server-Sent Events: `id:` the feed cursor
    # to resume from with `follow CURSOR`, `data:` the change). An HTTP error prints the
    # envelope and exits 1; the stream's end (or FOLLOW_SECONDS) exits 0.
    args=(-sSN --fail-with-body -H 'Accept: text/event-stream')
    if [[ -n "${TOKEN:-}" ]]; then
      args+=(-H "Authorization: Bearer $TOKEN")
    fi
    if [[ -n "${1:-}" ]]; then
      args+=(-H "Last-Event-ID: $1")
    fi
    if [[ -n "${FOLLOW_SECONDS:-}" ]]; then
      args+=(-m "$FOLLOW_SECONDS")
    fi
    code=0
    curl "${args[@]}" "$BASE_URL/api/changes/stream" || code=$?
    case $code in
      0 | 28) exit 0 ;;  # ended by the server, or FOLLOW_SECONDS passed
      22) echo >&2; echo "HTTP error GET /api/changes/stream" >&2; exit 1 ;;
      *) exit "$code" ;;
    esac
    ;;
  stream-ticket) request POST /api/changes/stream/tickets ;;
  bulk)
    need 1 "$@"
    request POST /api/tasks/bulk "$1"
    ;;
  clear-completed) request DELETE /api/tasks/completed ;;
  get)
    need 1 "$@"
    request GET "/api/tasks/$1"
    ;;
  replace)
    need 2 "$@"
    request PUT "/api/tasks/$1" "$2"
    ;;
  update)
    need 2 "$@"
    request PATCH "/api/tasks/$1" "$2"
    ;;
  delete)
    need 1 "$@"
    request DELETE "/api/tasks/$1"
    ;;
  complete)
    need 1 "$@"
    case "${2:-}" in
      "") request PATCH "/api/tasks/$1/complete" ;;
      true | false) request PATCH "/api/tasks/$1/complete" "{\"completed\": $2}" ;;
      *) usage ;;
    esac
    ;;
  occurrences)
    need 1 "$@"
    request GET "/api/tasks/$1/occurrences${2:+?count=$2}"
    ;;
  move)
    need 2 "$@"
    request POST "/api/tasks/$1/move" "$2"
    ;;
  subtree)
    need 1 "$@"
    request GET "/api/tasks/$1/subtree"
    ;;
  lists) request GET /api/lists ;;
  create-list)
    need 1 "$@"
    if [[ "$1" == \{* ]]; then
      request POST /api/lists "$1"
    else
      request POST /api/lists "{\"name\": $(json_string "$1")}"
    fi
    ;;
  children)  # a task's children by their collection's PATH, e.g. `children 42 comments`
    need 2 "$@"
    request GET "/api/tasks/$1/$2${3:+?$3}"
    ;;
  child)
    need 3 "$@"
    request GET "/api/tasks/$1/$2/$3"
    ;;
  add-child)
    need 3 "$@"
    request POST "/api/tasks/$1/$2" "$3"
    ;;
  update-child)
    need 4 "$@"
    request PATCH "/api/tasks/$1/$2/$3" "$4"
    ;;
  delete-child)
    need 3 "$@"
    request DELETE "/api/tasks/$1/$2/$3"
    ;;
  get-list)
    need 1 "$@"
    request GET "/api/lists/$1"
    ;;
  replace-list)
    need 2 "$@"
    request PUT "/api/lists/$1" "$2"
    ;;
  update-list)
    need 2 "$@"
    request PATCH "/api/lists/$1" "$2"
    ;;
  move-list)
    need 1 "$@"
    body=${2:-}
    request POST "/api/lists/$1/move" "${body:-"{}"}"
    ;;
  delete-list)
    need 1 "$@"
    request DELETE "/api/lists/$1"
    ;;
  members)
    need 1 "$@"
    request GET "/api/lists/$1/members"
    ;;
  update-member)
    need 3 "$@"
    request PATCH "/api/lists/$1/members/$2" "$3"
    ;;
  remove-member)
    need 2 "$@"
    request DELETE "/api/lists/$1/members/$2"
    ;;
  transfer-list)
    need 2 "$@"
    request POST "/api/lists/$1/transfer" "{\"user_id\": $(json_string "$2")}"
    ;;
  invite)
    need 2 "$@"
    request POST "/api/lists/$1/invitations" "$2"
    ;;
  invitations)
    need 1 "$@"
    request GET "/api/lists/$1/invitations"
    ;;
  revoke-invitation)
    need 2 "$@"
    request DELETE "/api/lists/$1/invitations/$2"
    ;;
  accept-invitation)
    need 1 "$@"
    request POST /api/invitations/accept "{\"token\": $(json_string "$1")}"
    ;;
  list-activity)
    need 1 "$@"
    request GET "/api/lists/$1/activity${2:+?$2}"
    ;;
  activity) request GET "/api/activity${1:+?$1}" ;;
  undo)
    need 1 "$@"
    request POST "/api/activity/$1/undo"
    ;;
  trash) request GET "/api/trash${1:+?$1}" ;;
  restore)  # a deleted task, back from the trash
    need 1 "$@"
    request POST "/api/trash/$1/restore"
    ;;
  purge)  # a deleted task, out of the trash for good
    need 1 "$@"
    request DELETE "/api/trash/$1"
    ;;
  create-feed)
    body='{}'
    if (($# > 0)); then
      body=$1
    fi
    request POST /api/calendar-feeds "$body"
    ;;
  filters) request GET /api/filters ;;
  create-filter)
    need 1 "$@"
    request POST /api/filters "$1"
    ;;
  get-filter)
    need 1 "$@"
    request GET "/api/filters/$1"
    ;;
  replace-filter)
    need 2 "$@"
    request PUT "/api/filters/$1" "$2"
    ;;
  update-filter)
    need 2 "$@"
    request PATCH "/api/filters/$1" "$2"
    ;;
  delete-filter)
    need 1 "$@"
    request DELETE "/api/filters/$1"
    ;;
  feeds) request GET /api/calendar-feeds ;;
  rotate-feed)
    need 1 "$@"
    request POST "/api/calendar-feeds/$1/rotate"
    ;;
  revoke-feed)
    need 1 "$@"
    request DELETE "/api/calendar-feeds/$1"
    ;;
  create-app-password)  # the answer's password is shown only here: give it to a CalDAV client
    need 1 "$@"
    request POST /api/app-passwords "$1"
    ;;
  app-passwords) request GET /api/app-passwords ;;
  revoke-app-password)
    need 1 "$@"
    request DELETE "/api/app-passwords/$1"
    ;;
  push-key) request GET /api/push/public-key ;;  # a page's applicationServerKey
  subscribe-push)  # JSON: a browser's PushSubscription.toJSON()
    need 1 "$@"
    request POST /api/push-subscriptions "$1"
    ;;
  push-subscriptions) request GET /api/push-subscriptions ;;
  unsubscribe-push)
    need 1 "$@"
    request DELETE "/api/push-subscriptions/$1"
    ;;
  notification-settings) request GET /api/notification-settings ;;
  update-notification-settings)  # e.g. '{"email_address": "ada@example.com"}' mails a link
    need 1 "$@"
    request PATCH /api/notification-settings "$1"
    ;;
  confirm-email)  # the confirmation mail's link, by its user and token (no sign-in needed)
    need 2 "$@"
    request GET "/api/notification-settings/confirm?user=$1&token=$2"
    ;;
  unsubscribe-email)  # a reminder mail's one-click List-Unsubscribe (no sign-in needed)
    need 2 "$@"
    request POST "/api/notification-settings/unsubscribe?user=$1&token=$2"
    ;;
  feed)  # a feed's iCalendar text, by the token in its URL (no sign-in needed)
    need 1 "$@"
    request GET "/api/calendar/$1.ics"
    ;;
  chat)
    need 1 "$@"
    request POST /api/chat "$(chat_body "$@")"
    ;;
  chat-stream)
    need 1 "$@"
    args=(-sS -N --fail-with-body -X POST "$BASE_URL/api/chat" -H 'Accept: text/event-stream')
    args+=(-H 'Content-Type: application/json' --data-binary "$(chat_body "$@")")
    if [[ -n "${TOKEN:-}" ]]; then
      args+=(-H "Authorization: Bearer $TOKEN")
    fi
    if [[ -n "${IDEMPOTENCY_KEY:-}" ]]; then
      args+=(-H "Idempotency-Key: $IDEMPOTENCY_KEY")
    fi
    # curl's 22 is an HTTP error (its body, the envelope, is printed): exit 1 as `request` does.
    curl "${args[@]}" || { code=$?; echo; ((code == 22)) && exit 1; exit "$code"; }
    ;;
  conversations) request GET "/api/conversations${1:+?$1}" ;;
  messages)
    need 1 "$@"
    request GET "/api/conversations/$1/messages${2:+?$2}"
    ;;
  delete-conversation)
    need 1 "$@"
    request DELETE "/api/conversations/$1"
    ;;
  call)
    need 2 "$@"
    request "$1" "$2" "${@:3}"
    ;;
  *)  # any route by its operation id (specs/openapi.json): see the header
    found=0
    resolved=$(python3 - "$(dirname "$0")/../specs/openapi.json" "$command" "$@" <<'PY'
import json, re, sys
from urllib.parse import quote
spec, wanted, values = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3:]
for path, operations in spec["paths"].items():
    for method, operation in operations.items():
        names = re.findall(r"\{[^}]+\}", path)
        if operation.get("operationId") == wanted:
            if len(values) < len(names):
                sys.exit(2)
            for name, value in zip(names, values):
                path = path.replace(name, quote(value, safe=""), 1)
            print(method.upper(), path, len(names), "body" if "requestBody" in operation else "query")
            sys.exit(0)
sys.exit(1)
PY
    ) || found=$?
    if ((found == 2)); then
      usage
    elif ((found != 0)); then
      echo "unknown command: $command (scripts/api.sh --help lists them)" >&2
      exit 2
    fi
    read -r method path count kind <<<"$resolved"
    shift "$count"
    if (($# == 0)); then
      request "$method" "$path"
    elif [[ "$kind" == body ]]; then
      request "$method" "$path" "$1"
    else
      request "$method" "$path?$1"
    fi
    ;;
esac
