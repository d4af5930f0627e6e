/**
 * A thin wrapper over the generated client, for what generation cannot give.
 *
 * The generated part: `schema.d.ts` (openapi-typescript, from specs/openapi.json) types every
 * path, parameter, body and response; `openapi-fetch` turns it into `client.GET("/api/tasks",
 * ...)` calls checked by `tsc`. It is exposed as `api.client` for anything not wrapped here.
 *
 * What this module adds:
 * - the envelope: `{"data": ...}` unwrapped; error bodies thrown as `ApiError` (status, code,
 *   message, details, requestId, retryAfter), `code` typed as the contract's `ErrorCode`s;
 * - ETags: one-task answers return `{ task, etag }`, one-list answers `{ list, etag }`; writes
 *   take `ifMatch` (412 PRECONDITION_FAILED when the task or list changed since), `getTask`
 *   takes `ifNoneMatch` (304);
 * - Idempotency-Key: creating calls send one (a fresh UUID unless you pass yours), so a retry,
 *   ours or yours, never creates twice;
 * - retries: a 429, 503 (or 409 IDEMPOTENCY_KEY_IN_USE) carrying `Retry-After` is retried
 *   after that many seconds, a bounded number of times (every such answer means nothing was
 *   done, so any method may be retried);
 * - abort signals: every call takes `{ signal }`, which also cuts a wait before a retry;
 * - chat: `chat` (one turn, with an Idempotency-Key so a retried turn never repeats a committed
 *   tool call) and `chatStream` (the same turn as parsed server-sent events);
 * - the live change stream: `changes.stream()`, every change as it commits, reconnecting from
 *   the last event's id after any interruption (nothing missed, nothing twice);
 * - attachments: `uploadAttachment` sends a Blob, File or bytes as the one multipart part
 *   `file`; `downloadAttachment` returns the bytes, name and type, following the API's redirect
 *   to a short-lived presigned URL itself (without the bearer token) when storage is S3;
 * - the export: `exportAccount` (the zip's bytes and file name), `exportAccountStream` (its body).
 */
import createClient, { type Client } from "openapi-fetch";
import type { components, operations, paths } from "./schema.js";

type Schemas = components["schemas"];
/** A task. `due_date` is a string: a day (`YYYY-MM-DD`, due on that day on the task's
 * `time_zone` clock, `all_day` true) or an instant (ISO 8601 in UTC, `...Z`); read it with
 * `dueOf`. */
export type Task = Schemas["TaskPublic"];
export type TaskCreate = Schemas["TaskCreate"];
export type TaskReplace = Schemas["TaskReplace"];
export type TaskUpdate = Schemas["TaskUpdate"];
/** `listTasks`' query: filters (`list_id`, `parent_id`: an id or "none"; `assignee`: "me",
 * "none" or a user id), `sort`, `cursor`... */
export type TaskQuery = NonNullable<operations["listTasks"]["parameters"]["query"]>;
export type TaskSort = Schemas["TaskSort"];
export type TaskPage = Schemas["TaskListEnvelope"];
export type TaskStats = Schemas["TaskStatsPublic"];
export type TaskOccurrences = Schemas["TaskOccurrences"];
export type Reminder = Task["reminders"][number];
export type TimeZone = Schemas["TimeZone"];
/** An import (`importTasks`): its state, progress, counts, warnings and what was kept only
 * partly. */
export type Import = Schemas["ImportPublic"];
/** A dry run's answer: what the import would create, nothing written. */
export type ImportPreview = Schemas["ImportPreview"];
export type ImportPage = Schemas["ImportsEnvelope"];
export type ImportQuery = NonNullable<operations["listImports"]["parameters"]["query"]>;
/** `importTasks`' options: `source` (default "auto"), `time_zone`, `list_id`. */
export interface ImportOptions extends CallOptions {
  source?: "auto" | "task-api" | "todoist" | "ticktick" | "google-tasks" | "ical";
  timeZone?: string;
  listId?: number;
}
export type TaskChange = Schemas["TaskChange"];
export type ChangesPage = Schemas["TaskChangesEnvelope"];
/**
 * A task's due date as what it is: a day, kept as its `YYYY-MM-DD` (due on that day on the
 * task's `time_zone` clock: `new Date("2030-12-01")` would be midnight UTC, the day before in
 * New York), or an instant, a `Date`.
 */
export type Due = { kind: "day"; day: string } | { kind: "instant"; at: Date };

/** True for a plain date (`YYYY-MM-DD`: a day), false for a date-time (an instant). */
export function isDay(dueDate: string): boolean {
  return /^\d{4}-\d{2}-\d{2}$/.test(dueDate);
}

/** A task's (or a change's task's) due date: a day, an instant, or null when it has none.
 * Send `day` back as `due_date` and it stays that day. */
export function dueOf(task: Pick<Task, "due_date" | "all_day">): Due | null {
  const value = task.due_date;
  if (value === null) return null;
  if (task.all_day || isDay(value)) return { kind: "day", day: value };
  return { kind: "instant", at: new Date(value) };
}
/** One change of the live stream and its `id`: a feed cursor, to resume from. */
export interface StreamedChange {
  id: string;
  change: TaskChange;
}
export type ChangeStreamOptions = CallOptions & {
  /** Resume after this id (an event's, a feed's `next_cursor`, a listing's `changes_cursor`);
   * default: from now. */
  cursor?: string;
  /** Wait before reconnecting after the stream was cut (default 1000 ms). */
  reconnectMs?: number;
};
/** Where `moveTask` puts a task: `after_id` / `before_id` (a sibling), `parent_id`, `list_id`. */
export type TaskMove = Schemas["TaskMove"];
export type BulkOperation = Schemas["BulkRequest"]["operations"][number];
export type BulkResult = Schemas["BulkResult"];
export type TaskList = Schemas["ListPublic"];
export type ListCreate = Schemas["ListCreate"];
export type ListReplace = Schemas["ListReplace"];
export type ListUpdate = Schemas["ListUpdate"];
/** Where `moveList` puts a list: `after_id` / `before_id` (another list), or `{}` (last). */
export type ListMove = Schemas["ListMove"];
export type ListStats = Schemas["ListStats"];
export type User = Schemas["UserPublic"];
export type AuthSession = Schemas["AuthSession"];
export type Credentials = Schemas["UserLogin"];
export type Registration = Schemas["UserRegister"];
export type TokenResponse = Schemas["TokenResponse"];
export type ErrorDetail = Schemas["ErrorDetail"];
export type ChatAnswer = Schemas["ChatAnswer"];
export type ToolCall = Schemas["ToolCallPublic"];
export type Conversation = Schemas["ConversationPublic"];
export type ChatMessage = Schemas["MessagePublic"];
export type ConversationPage = Schemas["ConversationsEnvelope"];
export type MessagePage = Schemas["MessagesEnvelope"];
export type PageQuery = { limit?: number; cursor?: string };
export type Comment = Schemas["CommentPublic"];
/** A file on a task, as the server measured it (size, SHA-256, detected type). */
export type Attachment = Schemas["AttachmentPublic"];
export type AttachmentPage = Schemas["AttachmentsEnvelope"];
/** The per-file maximum, the most files a task holds, your quota and your use. */
export type AttachmentLimits = Schemas["AttachmentLimits"];
/** A downloaded file: its bytes, and the name and type the server sent with them. */
export interface DownloadedFile {
  bytes: Uint8Array;
  filename: string;
  contentType: string;
}
export type CommentPage = Schemas["CommentsEnvelope"];
/** What happened: a task, list, member, comment or invitation changed, by whom, old and new. */
export type ActivityItem = Schemas["ActivityItem"];
export type ActivityPage = Schemas["ActivityEnvelope"];
/** A page of the trash: deleted tasks you may restore, most recently deleted first. */
export type TrashPage = Schemas["TrashEnvelope"];
/** What a caller may do with a list, each role including the ones before it. */
export type Role = Schemas["Role"];
/** A role `updateMember` and `createInvitation` give (an owner is made by `transferList`). */
export type MemberRole = Schemas["MemberUpdate"]["role"];
/** A member of a shared list (its owner included, with the role `owner`). */
export type Member = Schemas["MemberPublic"];
/** A pending invitation, as `listInvitations` shows it (never its token). */
export type Invitation = Schemas["InvitationPublic"];
/** A new invitation: the only answer that carries its `token`. */
export type InvitationCreated = Schemas["InvitationCreated"];
export type InvitationCreate = Schemas["InvitationCreate"];
/** A saved filter: a name and a query of `GET /api/tasks` (`query`: its parameters as JSON). */
export type SavedFilter = Schemas["FilterPublic"];
export type SavedQuery = Schemas["SavedQuery"];
export type FilterCreate = Schemas["FilterCreate"];
export type FilterUpdate = Schemas["FilterUpdate"];
/** A calendar feed, as `listCalendarFeeds` shows it (never its URL). */
export type CalendarFeed = Schemas["CalendarFeedPublic"];
/** A new or rotated feed: the only answer that carries its `url` (with its secret token). */
export type CalendarFeedCreated = Schemas["CalendarFeedCreated"];
export type CalendarFeedCreate = Schemas["CalendarFeedCreate"];
/** An app password for a CalDAV client, as `listAppPasswords` shows it (never the password). */
export type AppPassword = Schemas["AppPasswordPublic"];
/** A new app password: the only answer that carries its `password`. */
export type AppPasswordCreated = Schemas["AppPasswordCreated"];
export type AppPasswordCreate = Schemas["AppPasswordCreate"];
/** A browser's `PushSubscription.toJSON()`, as `subscribePush` takes it. */
export type PushSubscriptionCreate = Schemas["PushSubscriptionCreate"];
/** A push subscription as the API shows it (never its keys). */
export type PushSubscriptionInfo = Schemas["PushSubscriptionPublic"];
export type NotificationSettings = Schemas["NotificationSettingsPublic"];
export type NotificationSettingsUpdate = Schemas["NotificationSettingsUpdate"];
/** One server-sent event of a streamed chat turn (specs/chat.md, "Streaming"). */
export type ChatEvent =
  | { event: "start"; data: { conversation_id: number } }
  | { event: "delta"; data: { text: string } }
  | { event: "tool_call_start"; data: { name: string; arguments: unknown } }
  | { event: "tool_call_end"; data: ToolCall }
  | { event: "done"; data: ChatAnswer }
  | { event: "error"; data: { error: Schemas["ErrorInfo"] } };

/**
 * The `code` of an error answer (specs/api-contract.md, "Error codes"; the schema types it as a
 * plain string), or `HTTP_ERROR` for an answer without an error body. `LIMIT_REACHED` (422):
 * a documented limit (lists per user, tasks per list, subtasks under one task) would be passed.
 */
export type ErrorCode =
  | "BAD_REQUEST"
  | "UNAUTHORIZED"
  | "FORBIDDEN"
  | "NOT_FOUND"
  | "METHOD_NOT_ALLOWED"
  | "NOT_ACCEPTABLE"
  | "REQUEST_TIMEOUT"
  | "CONFLICT"
  | "IDEMPOTENCY_KEY_IN_USE"
  | "CURSOR_EXPIRED"
  | "PRECONDITION_FAILED"
  | "PAYLOAD_TOO_LARGE"
  | "UNSUPPORTED_MEDIA_TYPE"
  | "VALIDATION_ERROR"
  | "LIMIT_REACHED"
  | "IDEMPOTENCY_KEY_MISMATCH"
  | "RATE_LIMITED"
  | "HEADERS_TOO_LARGE"
  | "INTERNAL_ERROR"
  | "SERVICE_UNAVAILABLE"
  | "CHAT_NOT_CONFIGURED"
  | "CHAT_PROVIDER_UNAVAILABLE"
  | "CHAT_PROVIDER_ERROR"
  | "CHAT_TOO_MANY_TURNS"
  | "CHAT_PROVIDER_TIMEOUT"
  | "HTTP_ERROR";

/** An error answer (`{"error": {"code", "message", "details"}}`), or a network-level one. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly details: ErrorDetail[],
    readonly requestId: string | null,
    /** Seconds the server asked to wait (429, 503, 409 IDEMPOTENCY_KEY_IN_USE), if it did. */
    readonly retryAfter: number | null,
  ) {
    super(`${status} ${code}: ${message}`);
  }

  static from(response: Response, body: unknown): ApiError {
    const error = (body as { error?: Partial<Schemas["ErrorInfo"]> } | null)?.error;
    return new ApiError(
      response.status,
      (error?.code as ErrorCode | undefined) ?? "HTTP_ERROR",
      error?.message ?? (response.statusText || "HTTP error"),
      error?.details ?? [],
      response.headers.get("X-Request-ID"),
      retryAfterSeconds(response),
    );
  }
}

export interface RetryOptions {
  /** Attempts in all, the first included (default 3; 1 turns retrying off). */
  attempts?: number;
  /** Give up at once when the server asks for a longer wait than this (default 30 s). */
  maxWaitSeconds?: number;
}

export interface TaskApiOptions {
  /** API root, e.g. http://127.0.0.1:8000 (a Next.js app: process.env.NEXT_PUBLIC_API_URL). */
  baseUrl: string;
  /** Bearer token; `register`, `login` and `token` set it too. */
  token?: string | undefined;
  retry?: RetryOptions;
  /** A fetch implementation (default: the global one: browsers, Node 18+, Next.js). */
  fetch?: (request: Request) => Promise<Response>;
}

export type CallOptions = {
  signal?: AbortSignal;
};
export type WriteOptions = CallOptions & {
  /** Change the task (list) only if its ETag is still this one (else 412 PRECONDITION_FAILED). */
  ifMatch?: string;
};
export type CreateOptions = CallOptions & {
  /** Default: a fresh UUID per call, reused by the call's own retries. */
  idempotencyKey?: string;
};
export type ChatOptions = CreateOptions & {
  /** Continue this conversation (default: start a new one). */
  conversationId?: number;
};
/** One task and its ETag (send it back as `ifMatch` / `ifNoneMatch`). */
export interface Tagged {
  task: Task;
  etag: string;
}
export interface Created extends Tagged {
  location: string;
  /** True when this is the recorded answer to an earlier call with the same key. */
  replayed: boolean;
}
/** One list and its ETag (of the list's own fields, not its counts). */
export interface TaggedList {
  list: TaskList;
  etag: string;
}
export interface CreatedList extends TaggedList {
  location: string;
}

/** The Task API: one method per route, typed by the generated schema. */
export class TaskApi {
  /** The generated client, for anything not wrapped here (e.g. `/api/{user_id}/tasks`). */
  readonly client: Client<paths>;
  /** The bearer token sent (`register`, `login` and `token` set it; sign-outs clear it). */
  accessToken: string | undefined;
  /** What fetches a presigned URL (no bearer token: the URL is its own credential). */
  private readonly fetchImpl: (request: Request) => Promise<Response>;

  constructor(options: TaskApiOptions) {
    this.accessToken = options.token;
    const fetchImpl = options.fetch ?? ((request: Request) => globalThis.fetch(request));
    this.fetchImpl = fetchImpl;
    this.client = createClient<paths>({
      baseUrl: options.baseUrl.replace(/\/+$/, ""),
      fetch: retrying(fetchImpl, options.retry),
    });
    this.client.use({
      onRequest: ({ request }) => {
        if (this.accessToken) request.headers.set("Authorization", `Bearer ${this.accessToken}`);
        return request;
      },
    });
  }

  /** The change feed, live: `for await (const { id, change } of api.changes.stream())`. */
  readonly changes = {
    stream: (options: ChangeStreamOptions = {}) => this.streamChanges(options),
  };

  // -- auth ---------------------------------------------------------------------------------

  async register(body: Registration, options: CallOptions = {}): Promise<AuthSession> {
    const session = data(await this.client.POST("/api/auth/register", { body, ...options }));
    this.accessToken = session.access_token;
    return session;
  }

  async login(body: Credentials, options: CallOptions = {}): Promise<AuthSession> {
    const session = data(await this.client.POST("/api/auth/login", { body, ...options }));
    this.accessToken = session.access_token;
    return session;
  }

  /** The OAuth2 password flow (a form): the bare token response, no envelope. */
  async token(username: string, password: string, options: CallOptions = {}) {
    const result = await this.client.POST("/api/auth/token", {
      body: { username, password, grant_type: "password" },
      bodySerializer: (form) => new URLSearchParams(form as Record<string, string>),
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      ...options,
    });
    const token: TokenResponse = ok(result);
    this.accessToken = token.access_token;
    return token;
  }

  async me(options: CallOptions = {}): Promise<User> {
    return data(await this.client.GET("/api/auth/me", options));
  }

  /** Revoke every token this API issued for the account, the current one included. */
  async logoutAll(options: CallOptions = {}): Promise<void> {
    ok(await this.client.POST("/api/auth/logout-all", options));
    this.accessToken = undefined;
  }

  /** Delete the account and all its tasks. */
  async deleteMe(options: CallOptions = {}): Promise<void> {
    ok(await this.client.DELETE("/api/auth/me", options));
    this.accessToken = undefined;
  }

  // -- tasks --------------------------------------------------------------------------------

  /** One page; pass `meta.next_cursor` back as `cursor` for the next (null on the last). */
  async listTasks(query: TaskQuery = {}, options: CallOptions = {}): Promise<TaskPage> {
    return ok(await this.client.GET("/api/tasks", { params: { query }, ...options }));
  }

  /** Every task matching `query`, page after page (`meta.next_cursor` followed for you). */
  async *allTasks(query: TaskQuery = {}, options: CallOptions = {}): AsyncGenerator<Task> {
    let cursor = query.cursor;
    do {
      const page = await this.listTasks({ ...query, ...(cursor ? { cursor } : {}) }, options);
      yield* page.data;
      cursor = page.meta.next_cursor;
    } while (cursor);
  }

  async createTask(body: TaskCreate, options: CreateOptions = {}): Promise<Created> {
    const { idempotencyKey = crypto.randomUUID(), ...init } = options;
    const result = await this.client.POST("/api/tasks", {
      body,
      params: { header: { "Idempotency-Key": idempotencyKey } },
      ...init,
    });
    const headers = result.response.headers;
    return {
      ...tagged(result),
      location: headers.get("Location") ?? "",
      replayed: headers.get("Idempotent-Replayed") === "true",
    };
  }

  /** The task, or `null` when `ifNoneMatch` names its current ETag (304 Not Modified). */
  async getTask(
    id: number,
    options: CallOptions & { ifNoneMatch?: string } = {},
  ): Promise<Tagged | null> {
    const { ifNoneMatch, ...init } = options;
    const result = await this.client.GET("/api/tasks/{task_id}", {
      params: { path: { task_id: id }, header: { "If-None-Match": ifNoneMatch ?? null } },
      ...init,
    });
    return result.response.status === 304 ? null : tagged(result);
  }

  /** PUT: changes the fields sent, as PATCH does (an omitted field keeps its value). */
  async replaceTask(id: number, body: TaskReplace, options: WriteOptions = {}): Promise<Tagged> {
    const { ifMatch, ...init } = options;
    const params = { path: { task_id: id }, header: { "If-Match": ifMatch ?? null } };
    return tagged(await this.client.PUT("/api/tasks/{task_id}", { params, body, ...init }));
  }

  /** PATCH: only the fields sent. */
  async updateTask(id: number, body: TaskUpdate, options: WriteOptions = {}): Promise<Tagged> {
    const { ifMatch, ...init } = options;
    const params = { path: { task_id: id }, header: { "If-Match": ifMatch ?? null } };
    return tagged(await this.client.PATCH("/api/tasks/{task_id}", { params, body, ...init }));
  }

  /** Toggle completion, or set it when `completed` is given. */
  async completeTask(id: number, completed?: boolean, options: WriteOptions = {}) {
    const { ifMatch, ...init } = options;
    const params = { path: { task_id: id }, header: { "If-Match": ifMatch ?? null } };
    const body = completed === undefined ? {} : { body: { completed } };
    const path = "/api/tasks/{task_id}/complete";
    return tagged(await this.client.PATCH(path, { params, ...body, ...init }));
  }

  /**
   * A recurring task's next due dates after its own (1-100, default 10; fewer once COUNT or
   * UNTIL ends the series, none for a task that does not recur).
   */
  async taskOccurrences(
    id: number,
    options: CallOptions & { count?: number } = {},
  ): Promise<TaskOccurrences> {
    const { count, ...init } = options;
    const params = { path: { task_id: id }, query: count ? { count } : {} };
    return data(await this.client.GET("/api/tasks/{task_id}/occurrences", { params, ...init }));
  }

  async deleteTask(id: number, options: WriteOptions = {}): Promise<void> {
    const { ifMatch, ...init } = options;
    const params = { path: { task_id: id }, header: { "If-Match": ifMatch ?? null } };
    ok(await this.client.DELETE("/api/tasks/{task_id}", { params, ...init }));
  }

  /**
   * Your task changes after `cursor` (a listing's `meta.changes_cursor`, or the previous
   * answer's `meta.next_cursor`), oldest first; a deletion has `task: null`. Poll with
   * `meta.next_cursor`; while `meta.has_more`, poll again at once.
   */
  async listChanges(
    cursor?: string,
    options: CallOptions & { limit?: number } = {},
  ): Promise<ChangesPage> {
    const { limit, ...init } = options;
    const query = { ...(cursor ? { cursor } : {}), ...(limit ? { limit } : {}) };
    return ok(await this.client.GET("/api/tasks/changes", { params: { query }, ...init }));
  }

  /**
   * Your changes as they commit (GET /api/changes/stream): the feed's entries, each with its
   * `id`. When the stream is cut (a server's restart or shutdown, `STREAM_MAX_SECONDS`, the
   * network) it reconnects with `Last-Event-ID`, the last id: nothing missed, nothing twice.
   * Ends by throwing `ApiError` on 401 (the token expired or was revoked), 410 CURSOR_EXPIRED
   * (list again and stream from its `changes_cursor`) or 422, or the signal's reason.
   */
  private async *streamChanges(options: ChangeStreamOptions): AsyncGenerator<StreamedChange> {
    const { cursor, reconnectMs = 1000, signal = new AbortController().signal } = options;
    let last = cursor;
    for (;;) {
      try {
        const result = await this.client.GET("/api/changes/stream", {
          params: { header: { "Last-Event-ID": last ?? null } },
          headers: { Accept: "text/event-stream" },
          parseAs: "stream",
          signal,
        });
        if (!result.response.ok || !result.response.body) {
          const error = ApiError.from(result.response, result.error);
          if (result.response.status < 500) throw error; // 5xx: reconnect below
        } else {
          for await (const record of serverSentEvents(result.response.body)) {
            if (record.id === null) continue;
            last = record.id;
            yield { id: record.id, change: record.data as TaskChange };
          }
        }
      } catch (error) {
        if (error instanceof ApiError || signal.aborted) throw error;
        // A cut connection (TypeError from fetch, a reset body): reconnect from `last`.
      }
      await sleep(reconnectMs, signal);
    }
  }

  async taskStats(options: CallOptions = {}): Promise<TaskStats> {
    return data(await this.client.GET("/api/tasks/stats", options));
  }

  /** 1-100 operations in order, all or nothing; a failing one throws and changes nothing. */
  async bulkTasks(operations: BulkOperation[], options: CreateOptions = {}) {
    const { idempotencyKey = crypto.randomUUID(), ...init } = options;
    const result = await this.client.POST("/api/tasks/bulk", {
      body: { operations },
      params: { header: { "Idempotency-Key": idempotencyKey } },
      ...init,
    });
    return data(result).results;
  }

  /** Delete every completed task; how many were deleted. */
  async clearCompletedTasks(options: CallOptions = {}): Promise<number> {
    return data(await this.client.DELETE("/api/tasks/completed", options)).deleted;
  }

  // -- subtasks and manual order ------------------------------------------------------------
  // A task's `list_id`, `parent_id` (createTask, updateTask) place it; `position` orders it
  // among its siblings (`listTasks({ list_id, parent_id: "none", sort: "position" })`).

  /**
   * Move a task, with its subtasks, in one request: right after / before a sibling
   * (`after_id` / `before_id`), under `parent_id`, or to the top level of `list_id`; without an
   * anchor it goes last. The moved task and its new ETag.
   */
  async moveTask(id: number, body: TaskMove, options: WriteOptions = {}): Promise<Tagged> {
    const { ifMatch, ...init } = options;
    const params = { path: { task_id: id }, header: { "If-Match": ifMatch ?? null } };
    return tagged(await this.client.POST("/api/tasks/{task_id}/move", { params, body, ...init }));
  }

  /** The task, then its subtasks depth-first in manual order (`parent_id` says whose). */
  async getTaskSubtree(id: number, options: CallOptions = {}): Promise<Task[]> {
    const params = { path: { task_id: id } };
    return data(await this.client.GET("/api/tasks/{task_id}/subtree", { params, ...options }));
  }

  // -- lists --------------------------------------------------------------------------------

  /** Every list (at most 100), in their order, with their task counts. */
  async listLists(options: CallOptions = {}): Promise<TaskList[]> {
    return data(await this.client.GET("/api/lists", options));
  }

  /** A new list, last; 409 CONFLICT for a name you have (ignoring case), 422 LIMIT_REACHED. */
  async createList(body: ListCreate, options: CallOptions = {}): Promise<CreatedList> {
    const result = await this.client.POST("/api/lists", { body, ...options });
    return { ...taggedList(result), location: result.response.headers.get("Location") ?? "" };
  }

  async getList(id: number, options: CallOptions = {}): Promise<TaggedList> {
    const params = { path: { list_id: id } };
    return taggedList(await this.client.GET("/api/lists/{list_id}", { params, ...options }));
  }

  /** PUT: `name`, and `color` (omitted: cleared). */
  async replaceList(id: number, body: ListReplace, options: WriteOptions = {}) {
    const { ifMatch, ...init } = options;
    const params = { path: { list_id: id }, header: { "If-Match": ifMatch ?? null } };
    return taggedList(await this.client.PUT("/api/lists/{list_id}", { params, body, ...init }));
  }

  /** PATCH: rename and/or recolour (`color: null` clears it). */
  async updateList(id: number, body: ListUpdate, options: WriteOptions = {}) {
    const { ifMatch, ...init } = options;
    const params = { path: { list_id: id }, header: { "If-Match": ifMatch ?? null } };
    return taggedList(await this.client.PATCH("/api/lists/{list_id}", { params, body, ...init }));
  }

  /** Right after / before another list, or last (`{}`). */
  async moveList(id: number, body: ListMove = {}, options: WriteOptions = {}) {
    const { ifMatch, ...init } = options;
    const params = { path: { list_id: id }, header: { "If-Match": ifMatch ?? null } };
    const path = "/api/lists/{list_id}/move";
    return taggedList(await this.client.POST(path, { params, body, ...init }));
  }

  /** Delete the list and every task in it (each a deletion in the change feed). */
  async deleteList(id: number, options: WriteOptions = {}): Promise<void> {
    const { ifMatch, ...init } = options;
    const params = { path: { list_id: id }, header: { "If-Match": ifMatch ?? null } };
    ok(await this.client.DELETE("/api/lists/{list_id}", { params, ...init }));
  }

  // -- comments -----------------------------------------------------------------------------

  /** A task's comments, oldest first (follow `meta.next_cursor`). In a shared list a viewer
   * reads them; anyone else gets the 404 of a missing task. */
  async listComments(taskId: number, query: PageQuery = {}, options: CallOptions = {}) {
    const params = { path: { task_id: taskId }, query };
    const path = "/api/tasks/{task_id}/comments";
    return ok(await this.client.GET(path, { params, ...options })) as CommentPage;
  }

  /** A comment by you (a shared list: commenter or more, else 403 FORBIDDEN). */
  async addComment(taskId: number, body: string, options: CallOptions = {}): Promise<Comment> {
    const params = { path: { task_id: taskId } };
    const path = "/api/tasks/{task_id}/comments";
    return data(await this.client.POST(path, { params, body: { body }, ...options }));
  }

  /** Edit your own comment (only its author may). */
  async editComment(taskId: number, commentId: number, body: string, options: CallOptions = {}) {
    const params = { path: { task_id: taskId, comment_id: commentId } };
    const path = "/api/tasks/{task_id}/comments/{comment_id}";
    return data(await this.client.PATCH(path, { params, body: { body }, ...options }));
  }

  /** Delete your comment (or, as an admin or the owner of the list, anyone's). */
  async deleteComment(taskId: number, commentId: number, options: CallOptions = {}) {
    const params = { path: { task_id: taskId, comment_id: commentId } };
    const path = "/api/tasks/{task_id}/comments/{comment_id}";
    ok(await this.client.DELETE(path, { params, ...options }));
  }

  // -- attachments --------------------------------------------------------------------------

  /**
   * Upload a file to a task (an editor and up): a Blob or File (its own name unless
   * `filename` is given) or bytes with a `filename`. The answer is what was stored, measured by
   * the server; 413 PAYLOAD_TOO_LARGE past the per-file maximum, 422 LIMIT_REACHED past the
   * task's 100 files or your quota (`attachmentLimits`). A retry (429, 503) sends the same
   * form again.
   */
  async uploadAttachment(
    taskId: number,
    file: Blob | Uint8Array,
    filename?: string,
    options: CallOptions = {},
  ): Promise<Attachment> {
    const name = filename ?? (file instanceof File ? file.name : undefined);
    if (!name) throw new TypeError("uploadAttachment: bytes need a filename");
    const form = new FormData();
    // A copy of bytes (over a possibly shared buffer) as a Blob; a Blob as it is.
    form.append("file", file instanceof Blob ? file : new Blob([file.slice()]), name);
    const params = { path: { task_id: taskId } };
    const path = "/api/tasks/{task_id}/attachments";
    // The schema types a binary part as a string; the FormData carries the Blob itself, sent
    // as it is (openapi-fetch lets fetch set the multipart Content-Type and boundary).
    const body = form as unknown as { file: string };
    return data(
      await this.client.POST(path, { params, body, bodySerializer: () => form, ...options }),
    );
  }

  /** A task's files, oldest first (follow `meta.next_cursor`); a reader of the task lists. */
  async listAttachments(taskId: number, query: PageQuery = {}, options: CallOptions = {}) {
    const params = { path: { task_id: taskId }, query };
    const path = "/api/tasks/{task_id}/attachments";
    return ok(await this.client.GET(path, { params, ...options })) as AttachmentPage;
  }

  async getAttachment(
    taskId: number,
    attachmentId: number,
    options: CallOptions = {},
  ): Promise<Attachment> {
    const params = { path: { task_id: taskId, attachment_id: attachmentId } };
    const path = "/api/tasks/{task_id}/attachments/{attachment_id}";
    return data(await this.client.GET(path, { params, ...options }));
  }

  /**
   * A file's bytes, name and type. With S3 storage the API answers 302 to a presigned URL of
   * a few minutes: followed here without the bearer token (the URL is its own credential;
   * never store or share it). In a browser, where a redirect cannot be read, fetch follows it
   * and drops the token itself (a cross-origin redirect).
   */
  async downloadAttachment(
    taskId: number,
    attachmentId: number,
    options: CallOptions = {},
  ): Promise<DownloadedFile> {
    const params = { path: { task_id: taskId, attachment_id: attachmentId } };
    const path = "/api/tasks/{task_id}/attachments/{attachment_id}/download";
    const asked = { params, parseAs: "stream" as const, ...options };
    let result = await this.client.GET(path, { ...asked, redirect: "manual" });
    let response = result.response;
    if (response.type === "opaqueredirect") {
      result = await this.client.GET(path, asked);
      response = result.response;
    }
    const location = response.headers.get("Location");
    if (response.status >= 300 && response.status < 400 && location) {
      await response.body?.cancel();
      const init = options.signal ? { signal: options.signal } : {};
      response = await this.fetchImpl(new Request(new URL(location, response.url), init));
      if (!response.ok) throw ApiError.from(response, null);
    } else if (!response.ok) {
      throw ApiError.from(response, result.error);
    }
    return {
      bytes: new Uint8Array(await response.arrayBuffer()),
      filename: filenameOf(response.headers.get("Content-Disposition")),
      contentType: response.headers.get("Content-Type") ?? "application/octet-stream",
    };
  }

  /**
   * Everything you own as one zip (`GET /api/export`: lists, tasks, comments, attachments'
   * bytes, saved filters, notification settings, `tasks.ics`; never a credential): its bytes
   * and the server's file name (`tasks-export-<YYYY-MM-DD>.zip`). The server streams it; for a
   * large account in a browser, `exportAccountStream()` hands you the body to pipe to a file.
   */
  async exportAccount(options: CallOptions = {}): Promise<DownloadedFile> {
    const response = await this.exportAccountStream(options);
    return {
      bytes: new Uint8Array(await response.arrayBuffer()),
      filename: filenameOf(response.headers.get("Content-Disposition")),
      contentType: response.headers.get("Content-Type") ?? "application/zip",
    };
  }

  /** `GET /api/export` as a `Response` whose body is not read yet (`response.body`: a stream). */
  async exportAccountStream(options: CallOptions = {}): Promise<Response> {
    const result = await this.client.GET("/api/export", { parseAs: "stream", ...options });
    if (!result.response.ok) throw ApiError.from(result.response, result.error);
    return result.response;
  }

  /** Delete a file (its uploader, or a list's admin or owner); its bytes go after the commit. */
  async deleteAttachment(taskId: number, attachmentId: number, options: CallOptions = {}) {
    const params = { path: { task_id: taskId, attachment_id: attachmentId } };
    const path = "/api/tasks/{task_id}/attachments/{attachment_id}";
    ok(await this.client.DELETE(path, { params, ...options }));
  }

  /** The per-file maximum, the most files a task holds, your quota and your use (trashed
   * files count until purged). */
  async attachmentLimits(options: CallOptions = {}): Promise<AttachmentLimits> {
    return data(await this.client.GET("/api/attachments/limits", options));
  }

  // -- sharing: members, transfer, invitations -----------------------------------------------
  // Anyone who is not a member of the list gets the 404 of a missing list; a member below the
  // role a call needs, 403 FORBIDDEN (specs/api-contract.md, "Shared lists").

  /** The list's owner (role `owner`), then its members in the order they joined (viewer+). */
  async listMembers(listId: number, options: CallOptions = {}): Promise<Member[]> {
    const params = { path: { list_id: listId } };
    return data(await this.client.GET("/api/lists/{list_id}/members", { params, ...options }));
  }

  /** Change a member's role (admin+ for roles below admin; the owner for `admin`). */
  async updateMember(listId: number, userId: string, role: MemberRole, options: CallOptions = {}) {
    const params = { path: { list_id: listId, user_id: userId } };
    const path = "/api/lists/{list_id}/members/{user_id}";
    return data(await this.client.PATCH(path, { params, body: { role }, ...options })) as Member;
  }

  /** Remove a member (admin+ below admin, the owner for admins); it loses access at once. */
  async removeMember(listId: number, userId: string, options: CallOptions = {}) {
    const params = { path: { list_id: listId, user_id: userId } };
    ok(await this.client.DELETE("/api/lists/{list_id}/members/{user_id}", { params, ...options }));
  }

  /** Leave a list shared with you (its owner cannot: 409; transfer it first). `userId` is
   * yours; without it, `me()` is asked first (one more round trip). */
  async leaveList(listId: number, options: CallOptions & { userId?: string } = {}) {
    const { userId, ...init } = options;
    await this.removeMember(listId, userId ?? (await this.me(init)).id, init);
  }

  /** Make a member the owner (owner only); you become an admin. The list as you now see it. */
  async transferList(listId: number, userId: string, options: CallOptions = {}) {
    const params = { path: { list_id: listId } };
    const path = "/api/lists/{list_id}/transfer";
    const body = { user_id: userId };
    return taggedList(await this.client.POST(path, { params, body, ...options }));
  }

  /** Invite to a list (admin+; an `admin` invitation: the owner). The answer alone carries
   * the `token` to hand to the invitee; with an `email`, only that account may accept. */
  async createInvitation(listId: number, body: InvitationCreate, options: CallOptions = {}) {
    const params = { path: { list_id: listId } };
    const path = "/api/lists/{list_id}/invitations";
    return data(await this.client.POST(path, { params, body, ...options })) as InvitationCreated;
  }

  /** The list's pending invitations, oldest first (admin+), without their tokens. */
  async listInvitations(listId: number, options: CallOptions = {}): Promise<Invitation[]> {
    const params = { path: { list_id: listId } };
    const path = "/api/lists/{list_id}/invitations";
    return data(await this.client.GET(path, { params, ...options }));
  }

  // -- saved filters ------------------------------------------------------------------------

  /** Your saved filters (at most 100), by name. Apply one: `listTasks({ filter: id })`, with
   * any parameter beside it replacing the filter's own. */
  async listFilters(options: CallOptions = {}): Promise<SavedFilter[]> {
    return data(await this.client.GET("/api/filters", options));
  }

  /** Save a query under a name: 409 CONFLICT for a name you have (ignoring case), 422 for a
   * query `GET /api/tasks` would refuse, 422 LIMIT_REACHED past 100. */
  async createFilter(body: FilterCreate, options: CallOptions = {}): Promise<SavedFilter> {
    return data(await this.client.POST("/api/filters", { body, ...options }));
  }

  async getFilter(id: number, options: CallOptions = {}): Promise<SavedFilter> {
    const params = { path: { filter_id: id } };
    return data(await this.client.GET("/api/filters/{filter_id}", { params, ...options }));
  }

  /** PUT: its name and whole query (omitted: `{}`, every task). */
  async replaceFilter(id: number, body: FilterCreate, options: CallOptions = {}) {
    const params = { path: { filter_id: id } };
    const answer = await this.client.PUT("/api/filters/{filter_id}", { params, body, ...options });
    return data(answer) as SavedFilter;
  }

  /** PATCH: rename it and/or replace its query. */
  async updateFilter(id: number, body: FilterUpdate, options: CallOptions = {}) {
    const params = { path: { filter_id: id } };
    const path = "/api/filters/{filter_id}";
    return data(await this.client.PATCH(path, { params, body, ...options })) as SavedFilter;
  }

  async deleteFilter(id: number, options: CallOptions = {}): Promise<void> {
    const params = { path: { filter_id: id } };
    ok(await this.client.DELETE("/api/filters/{filter_id}", { params, ...options }));
  }

  // -- calendar feeds -----------------------------------------------------------------------

  /** A feed of your tasks with a due date (`scope: "all"`) or of one list you can read
   * (`scope: "list"`, `list_id`) for a calendar app. The answer alone carries its `url`. */
  async createCalendarFeed(body: CalendarFeedCreate = {}, options: CallOptions = {}) {
    const answer = await this.client.POST("/api/calendar-feeds", { body, ...options });
    return data(answer) as CalendarFeedCreated;
  }

  /** Your calendar feeds, oldest first, without their URLs. */
  async listCalendarFeeds(options: CallOptions = {}): Promise<CalendarFeed[]> {
    return data(await this.client.GET("/api/calendar-feeds", { ...options }));
  }

  /** A new URL for the feed: the old one answers 404 at once. */
  async rotateCalendarFeed(feedId: number, options: CallOptions = {}) {
    const params = { path: { feed_id: feedId } };
    const path = "/api/calendar-feeds/{feed_id}/rotate";
    return data(await this.client.POST(path, { params, ...options })) as CalendarFeedCreated;
  }

  /** Revoke a feed: its URL answers 404 from now on. */
  async revokeCalendarFeed(feedId: number, options: CallOptions = {}) {
    const params = { path: { feed_id: feedId } };
    ok(await this.client.DELETE("/api/calendar-feeds/{feed_id}", { params, ...options }));
  }

  // -- app passwords (CalDAV) ---------------------------------------------------------------

  /** A password for one CalDAV client (HTTP Basic with the answer's `username`, at its
   * `dav_url`); `scope: "read"` for a read-only client. The answer alone carries `password`. */
  async createAppPassword(body: AppPasswordCreate, options: CallOptions = {}) {
    const answer = await this.client.POST("/api/app-passwords", { body, ...options });
    return data(answer) as AppPasswordCreated;
  }

  /** Your app passwords, by name, with when each was last used; never a password. */
  async listAppPasswords(options: CallOptions = {}): Promise<AppPassword[]> {
    return data(await this.client.GET("/api/app-passwords", { ...options }));
  }

  /** Revoke an app password: a client signing in with it is refused from the next request. */
  async revokeAppPassword(appPasswordId: number, options: CallOptions = {}) {
    const params = { path: { app_password_id: appPasswordId } };
    ok(await this.client.DELETE("/api/app-passwords/{app_password_id}", { params, ...options }));
  }

  // -- reminders on a phone or in an inbox (Web Push, email) -------------------------------

  /** The VAPID public key: a page's `applicationServerKey` for `PushManager.subscribe`. */
  async pushPublicKey(options: CallOptions = {}): Promise<string> {
    return data(await this.client.GET("/api/push/public-key", { ...options })).public_key;
  }

  /** Send reminders to this browser: `subscription.toJSON()` as it is. The same endpoint
   * again is the same subscription. */
  async subscribePush(body: PushSubscriptionCreate, options: CallOptions = {}) {
    // 201 for a new subscription, 200 for the same endpoint again: the same body.
    const answer = await this.client.POST("/api/push-subscriptions", { body, ...options });
    return (ok(answer) as { data: PushSubscriptionInfo }).data;
  }

  /** Your push subscriptions, oldest first; never their keys. */
  async listPushSubscriptions(options: CallOptions = {}): Promise<PushSubscriptionInfo[]> {
    return data(await this.client.GET("/api/push-subscriptions", { ...options }));
  }

  /** Stop sending reminders to a browser. */
  async deletePushSubscription(subscriptionId: number, options: CallOptions = {}) {
    const params = { path: { push_subscription_id: subscriptionId } };
    const path = "/api/push-subscriptions/{push_subscription_id}";
    ok(await this.client.DELETE(path, { params, ...options }));
  }

  /** Where your reminders go: push, email (a confirmed address only), the email's zone. */
  async notificationSettings(options: CallOptions = {}): Promise<NotificationSettings> {
    return data(await this.client.GET("/api/notification-settings", { ...options }));
  }

  /** Change them; a new `email_address` is mailed a confirmation link. */
  async updateNotificationSettings(body: NotificationSettingsUpdate, options: CallOptions = {}) {
    const answer = await this.client.PATCH("/api/notification-settings", { body, ...options });
    return data(answer) as NotificationSettings;
  }

  // -- imports ------------------------------------------------------------------------------

  /** Send a file another app exported (or our own export) as the multipart form
   * `POST /api/imports` takes; `previewImport` is its dry run. Answers the queued import:
   * poll `getImport` until `state` is `done` or `failed`. */
  async importTasks(
    file: Blob,
    filename: string,
    options: ImportOptions = {},
  ): Promise<Import> {
    const form = this.importForm(file, filename, false, options);
    const answer = await this.client.POST("/api/imports", form);
    // 202 (queued) or, for a dry run, 200: the document types both answers.
    return (ok(answer) as unknown as { data: Import }).data;
  }

  /** What `importTasks` would create, nothing written. */
  async previewImport(
    file: Blob,
    filename: string,
    options: ImportOptions = {},
  ): Promise<ImportPreview> {
    const form = this.importForm(file, filename, true, options);
    const answer = await this.client.POST("/api/imports", form);
    return (ok(answer) as unknown as { data: ImportPreview }).data;
  }

  private importForm(file: Blob, filename: string, dryRun: boolean, options: ImportOptions) {
    const { source = "auto", timeZone, listId, ...init } = options;
    const form = new FormData();
    form.append("file", file, filename);
    form.append("source", source);
    form.append("dry_run", String(dryRun));
    if (timeZone !== undefined) form.append("time_zone", timeZone);
    if (listId !== undefined) form.append("list_id", String(listId));
    // As `uploadAttachment`: the FormData carries the Blob itself (fetch sets the boundary).
    const body = form as unknown as { file: string };
    return { body, bodySerializer: () => form, ...init };
  }

  /** An import of yours (another user's: NOT_FOUND). */
  async getImport(importId: number, options: CallOptions = {}): Promise<Import> {
    const params = { path: { import_id: importId } };
    return data(await this.client.GET("/api/imports/{import_id}", { params, ...options }));
  }

  /** Your imports, newest first (follow `meta.next_cursor`). */
  async listImports(query: ImportQuery = {}, options: CallOptions = {}): Promise<ImportPage> {
    const params = { query };
    return ok(await this.client.GET("/api/imports", { params, ...options })) as ImportPage;
  }

  /** Put every task an import created in the trash (one step); the same file imports again. */
  async undoImport(importId: number, options: CallOptions = {}): Promise<Import> {
    const params = { path: { import_id: importId } };
    return data(await this.client.POST("/api/imports/{import_id}/undo", { params, ...options }));
  }

  // -- trash --------------------------------------------------------------------------------

  /** Deleted tasks you may restore (yours, and those of lists you edit), most recently deleted
   * first (follow `meta.next_cursor`); each stays 30 days. */
  async listTrash(query: PageQuery = {}, options: CallOptions = {}): Promise<TrashPage> {
    const params = { query };
    return ok(await this.client.GET("/api/trash", { params, ...options })) as TrashPage;
  }

  /** Bring a deleted task back, with its id, subtasks and comments (a retry with the same
   * `idempotencyKey` gets the first answer). */
  async restoreTask(taskId: number, options: CreateOptions & WriteOptions = {}): Promise<Task> {
    const { idempotencyKey = crypto.randomUUID(), ifMatch, ...init } = options;
    const header = { "Idempotency-Key": idempotencyKey, "If-Match": ifMatch ?? null };
    const params = { path: { trash_id: taskId }, header };
    const path = "/api/trash/{trash_id}/restore";
    return data(await this.client.POST(path, { params, ...init }));
  }

  /** Delete a deleted task for good (it leaves the trash). */
  async purgeTask(taskId: number, options: CallOptions = {}) {
    const params = { path: { trash_id: taskId } };
    ok(await this.client.DELETE("/api/trash/{trash_id}", { params, ...options }));
  }

  // -- activity -----------------------------------------------------------------------------

  /** What happened in your space and every list shared with you, newest first (follow
   * `meta.next_cursor`). */
  async listActivity(query: PageQuery = {}, options: CallOptions = {}): Promise<ActivityPage> {
    const params = { query };
    return ok(await this.client.GET("/api/activity", { params, ...options })) as ActivityPage;
  }

  /** One list's activity (viewer or above; anyone else: the 404 of a missing list). */
  async listListActivity(listId: number, query: PageQuery = {}, options: CallOptions = {}) {
    const params = { path: { list_id: listId }, query };
    const path = "/api/lists/{list_id}/activity";
    return ok(await this.client.GET(path, { params, ...options })) as ActivityPage;
  }

  /** Undo one activity entry: its task's fields back to their old values (409 CONFLICT, with
   * each field's current value, when a later change touched them; nothing changes). */
  async undoActivity(
    entryId: number,
    options: WriteOptions & CreateOptions = {},
  ): Promise<Tagged> {
    const { ifMatch, idempotencyKey = crypto.randomUUID(), ...init } = options;
    const header = { "If-Match": ifMatch ?? null, "Idempotency-Key": idempotencyKey };
    const params = { path: { event_id: entryId }, header };
    return tagged(await this.client.POST("/api/activity/{event_id}/undo", { params, ...init }));
  }

  /** Revoke a pending invitation: its token stops working. */
  async revokeInvitation(listId: number, invitationId: number, options: CallOptions = {}) {
    const params = { path: { list_id: listId, invitation_id: invitationId } };
    const path = "/api/lists/{list_id}/invitations/{invitation_id}";
    ok(await this.client.DELETE(path, { params, ...options }));
  }

  /** Accept an invitation with its token: the list, with your role in it. Any unusable token
   * (unknown, expired, revoked, used, someone else's) is the same 404. */
  async acceptInvitation(token: string, options: CallOptions = {}): Promise<TaskList> {
    const body = { token };
    return data(await this.client.POST("/api/invitations/accept", { body, ...options }));
  }

  // -- chat ---------------------------------------------------------------------------------

  /** One chat turn: the agent's answer and the tool calls it made. A retry (ours after a
   * 503's Retry-After, or yours with the same `idempotencyKey`) replays an answered turn and
   * never repeats a tool call that committed. */
  async chat(message: string, options: ChatOptions = {}): Promise<ChatAnswer> {
    const { idempotencyKey = crypto.randomUUID(), conversationId, ...init } = options;
    const body = { message, conversation_id: conversationId ?? null };
    const params = { header: { "Idempotency-Key": idempotencyKey } };
    const result = await this.client.POST("/api/chat", { params, body, ...init });
    // The 200 is JSON here (the event stream is `chatStream`'s): the schema lists both.
    return data(result as Result<{ data: ChatAnswer }>);
  }

  /** The same turn as server-sent events, as they arrive: `start`, `delta`s, each tool call's
   * start and end, then `done` (the answer) or `error`. An error before the turn starts (404,
   * 422, 429, 503 CHAT_NOT_CONFIGURED) is thrown as `ApiError`, as `chat` throws it. */
  async *chatStream(message: string, options: ChatOptions = {}): AsyncGenerator<ChatEvent> {
    const { idempotencyKey = crypto.randomUUID(), conversationId, ...init } = options;
    const result = await this.client.POST("/api/chat", {
      params: { header: { "Idempotency-Key": idempotencyKey } },
      body: { message, conversation_id: conversationId ?? null },
      headers: { Accept: "text/event-stream" },
      parseAs: "stream",
      ...init,
    });
    if (!result.response.ok || !result.response.body) {
      throw ApiError.from(result.response, result.error);
    }
    for await (const record of serverSentEvents(result.response.body)) {
      yield { event: record.event, data: record.data } as ChatEvent;
    }
  }

  /** Your conversations, newest activity first (follow `meta.next_cursor`). */
  async listConversations(query: PageQuery = {}, options: CallOptions = {}) {
    const params = { query };
    return ok(await this.client.GET("/api/conversations", { params, ...options }));
  }

  /** A conversation's messages, oldest first; an assistant's keep their tool calls. */
  async listConversationMessages(id: number, query: PageQuery = {}, options: CallOptions = {}) {
    const params = { path: { conversation_id: id }, query };
    const path = "/api/conversations/{conversation_id}/messages";
    return ok(await this.client.GET(path, { params, ...options }));
  }

  async deleteConversation(id: number, options: CallOptions = {}): Promise<void> {
    const params = { path: { conversation_id: id } };
    ok(await this.client.DELETE("/api/conversations/{conversation_id}", { params, ...options }));
  }
}

/** One server-sent event: its `event` name ("message" by default), JSON `data` and `id`. */
interface EventRecord {
  event: string;
  data: unknown;
  id: string | null;
}

/** Parse a text/event-stream body into records (one per blank-line block with `data:`;
 * comments, such as heartbeats, and `retry:` skipped). */
async function* serverSentEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<EventRecord> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buffered += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end: number;
      while ((end = buffered.indexOf("\n\n")) >= 0) {
        const block = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        let event = "message";
        let id: string | null = null;
        const lines: string[] = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) lines.push(line.slice(5).replace(/^ /, ""));
          else if (line.startsWith("id:")) id = line.slice(3).replace(/^ /, "");
        }
        if (lines.length) yield { event, data: JSON.parse(lines.join("\n")), id };
      }
    }
  } finally {
    // A consumer that stopped early (a `break`) closes the connection.
    await reader.cancel().catch(() => undefined);
  }
}

// -- plumbing -------------------------------------------------------------------------------

interface Result<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

function ok<T>(result: Result<T>): T {
  if (!result.response.ok) throw ApiError.from(result.response, result.error);
  return result.data as T;
}

function data<T>(result: Result<{ data: T }>): T {
  return ok(result).data;
}

function tagged(result: Result<{ data: Task }>): Tagged {
  return { task: data(result), etag: result.response.headers.get("ETag") ?? "" };
}

function taggedList(result: Result<{ data: TaskList }>): TaggedList {
  return { list: data(result), etag: result.response.headers.get("ETag") ?? "" };
}

/** The name in a Content-Disposition: RFC 5987's `filename*` (UTF-8) first, else `filename`. */
function filenameOf(disposition: string | null): string {
  if (!disposition) return "";
  const extended = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(disposition);
  if (extended?.[1]) return decodeURIComponent(extended[1].trim());
  const plain = /filename\s*=\s*"((?:[^"\\]|\\.)*)"/i.exec(disposition);
  return plain?.[1]?.replace(/\\(.)/g, "$1") ?? "";
}

function retryAfterSeconds(response: Response): number | null {
  const value = response.headers.get("Retry-After");
  if (value === null) return null;
  if (/^\d+$/.test(value.trim())) return Number(value);
  const date = Date.parse(value); // an HTTP-date is allowed too
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

/** Statuses that mean "nothing was done, come back after Retry-After". */
const RETRIED = new Set([409, 429, 503]);

/** `fetchImpl`, retrying answers that carry `Retry-After` (see the module comment). */
export function retrying(
  fetchImpl: (request: Request) => Promise<Response>,
  { attempts = 3, maxWaitSeconds = 30 }: RetryOptions = {},
): (request: Request) => Promise<Response> {
  return async (request) => {
    for (let attempt = 1; ; attempt++) {
      const last = attempt >= attempts;
      // A body can be sent once: every attempt but the last sends a copy.
      const response = await fetchImpl(last ? request : request.clone());
      const wait = RETRIED.has(response.status) ? retryAfterSeconds(response) : null;
      if (last || wait === null || wait > maxWaitSeconds) return response;
      await response.body?.cancel();
      await sleep(wait * 1000, request.signal);
    }
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    signal.throwIfAborted();
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
