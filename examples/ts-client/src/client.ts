/**
 * A small typed client for the Task API, built on `fetch` and on types generated from the
 * committed OpenAPI document (`npm run generate` writes src/schema.d.ts).
 *
 * - Success bodies are unwrapped: `{"data": ...}` becomes the value you get back; lists keep
 *   their `meta` (count, limit, has_more, next_cursor, total).
 * - Error bodies (`{"error": {"code", "message", "details"}}`) become a thrown `ApiError`.
 *
 * Every request and response type below is derived from `paths`, so regenerating the schema
 * after an API change makes `tsc` point at every call that no longer fits.
 */
import type { components, paths } from "./schema.js";

type Schemas = components["schemas"];
type Json<T> = T extends { content: { "application/json": infer B } } ? B : never;
type Ok<Op> = Op extends { responses: { 200: infer R } } | { responses: { 201: infer R } }
  ? Json<R>
  : never;
type Body<Op> = Op extends { requestBody?: { content: { "application/json": infer B } } }
  ? B
  : never;

export type Task = Schemas["TaskPublic"];
export type User = Schemas["UserPublic"];
export type AuthSession = Schemas["AuthSession"];
export type ListMeta = Schemas["ListMeta"];
export type TaskCreate = Body<paths["/api/tasks"]["post"]>;
export type TaskReplace = Body<paths["/api/tasks/{task_id}"]["put"]>;
export type TaskUpdate = Body<paths["/api/tasks/{task_id}"]["patch"]>;
export type TaskQuery = NonNullable<paths["/api/tasks"]["get"]["parameters"]["query"]>;
export type Credentials = Body<paths["/api/auth/login"]["post"]>;
export type Registration = Body<paths["/api/auth/register"]["post"]>;
export type TaskList = Ok<paths["/api/tasks"]["get"]>;
export type TaskStats = Schemas["TaskStatsPublic"];
export type BulkRequest = Body<paths["/api/tasks/bulk"]["post"]>;
/** One bulk operation, discriminated by `op` (complete, reopen, delete, set_priority, ...). */
export type BulkOperation = BulkRequest["operations"][number];
export type BulkResponse = Schemas["BulkResponse"];
export type BulkResult = Schemas["BulkResult"];
export type ClearedCompleted = Schemas["ClearedCompleted"];
export type ErrorInfo = Schemas["ErrorInfo"];
export type ErrorDetail = Schemas["ErrorDetail"];

/** The API's error envelope, thrown by every method on a non-2xx answer. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: ErrorDetail[];
  readonly requestId: string | null;

  constructor(status: number, info: ErrorInfo, requestId: string | null) {
    super(`${status} ${info.code}: ${info.message}`);
    this.name = "ApiError";
    this.status = status;
    this.code = info.code;
    this.details = info.details ?? [];
    this.requestId = requestId;
  }
}

function isErrorEnvelope(body: unknown): body is Schemas["ErrorEnvelope"] {
  if (typeof body !== "object" || body === null || !("error" in body)) return false;
  const error = (body as { error: unknown }).error;
  return typeof error === "object" && error !== null && "code" in error && "message" in error;
}

export interface ClientOptions {
  /** API root, e.g. http://127.0.0.1:8000 */
  baseUrl: string;
  /** Bearer token; set later with `client.token = ...` (e.g. after `login`). */
  token?: string;
  /** A fetch implementation (defaults to the global one: browsers, Node 18+, Next.js). */
  fetch?: typeof fetch;
}

export class TaskApiClient {
  token: string | undefined;
  private readonly baseUrl: string;
  private readonly fetchImpl: typeof fetch;

  constructor(options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.token = options.token;
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  // -- auth ---------------------------------------------------------------------------------

  /** Create an account; the returned session's token is also kept for later calls. */
  async register(data: Registration): Promise<AuthSession> {
    const session = await this.data<AuthSession>("POST", "/api/auth/register", data);
    this.token = session.access_token;
    return session;
  }

  /** Sign in; the returned session's token is also kept for later calls. */
  async login(data: Credentials): Promise<AuthSession> {
    const session = await this.data<AuthSession>("POST", "/api/auth/login", data);
    this.token = session.access_token;
    return session;
  }

  me(): Promise<User> {
    return this.data<User>("GET", "/api/auth/me");
  }

  // -- tasks --------------------------------------------------------------------------------

  /**
   * One page of the caller's tasks. Filters (`status`, `priority`, `tag`, `q`, `due_before`,
   * ...) combine with AND; `priority` and `tag` take arrays (repeated query parameters). Pass
   * `meta.next_cursor` back as `cursor` for the next page; it is null on the last one.
   */
  listTasks(query: TaskQuery = {}): Promise<TaskList> {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value === undefined || value === null) continue;
      for (const item of Array.isArray(value) ? value : [value]) params.append(key, String(item));
    }
    const search = params.toString() ? `?${params.toString()}` : "";
    return this.request<TaskList>("GET", `/api/tasks${search}`);
  }

  createTask(data: TaskCreate): Promise<Task> {
    return this.data<Task>("POST", "/api/tasks", data);
  }

  getTask(id: number): Promise<Task> {
    return this.data<Task>("GET", `/api/tasks/${id}`);
  }

  /** PUT: replaces every editable field; omitted optional fields take their defaults. */
  replaceTask(id: number, data: TaskReplace): Promise<Task> {
    return this.data<Task>("PUT", `/api/tasks/${id}`, data);
  }

  /** PATCH: changes only the fields sent. */
  updateTask(id: number, data: TaskUpdate): Promise<Task> {
    return this.data<Task>("PATCH", `/api/tasks/${id}`, data);
  }

  /** Toggle completion, or set it when `completed` is given. */
  completeTask(id: number, completed?: boolean): Promise<Task> {
    const body = completed === undefined ? undefined : { completed };
    return this.data<Task>("PATCH", `/api/tasks/${id}/complete`, body);
  }

  async deleteTask(id: number): Promise<void> {
    await this.request<null>("DELETE", `/api/tasks/${id}`);
  }

  /** Counts over all the caller's tasks: total, pending, completed, overdue, by_priority. */
  stats(): Promise<TaskStats> {
    return this.data<TaskStats>("GET", "/api/tasks/stats");
  }

  /**
   * Apply 1-100 operations in order, all or nothing; each result has the task after its
   * operation (`task` is null for `delete`). A failing operation throws and changes nothing.
   */
  bulk(operations: BulkOperation[]): Promise<BulkResponse> {
    const body: BulkRequest = { operations };
    return this.data<BulkResponse>("POST", "/api/tasks/bulk", body);
  }

  /** Delete all the caller's completed tasks; `deleted` says how many. */
  clearCompleted(): Promise<ClearedCompleted> {
    return this.data<ClearedCompleted>("DELETE", "/api/tasks/completed");
  }

  // -- plumbing -----------------------------------------------------------------------------

  private async data<T>(method: string, path: string, body?: unknown): Promise<T> {
    const envelope = await this.request<{ data: T }>(method, path, body);
    return envelope.data;
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    const init: RequestInit = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await this.fetchImpl(`${this.baseUrl}${path}`, init);
    const text = await response.text();
    const parsed: unknown = text ? JSON.parse(text) : null;
    if (!response.ok) {
      const info: ErrorInfo = isErrorEnvelope(parsed)
        ? parsed.error
        : { code: "HTTP_ERROR", message: response.statusText || text, details: [] };
      throw new ApiError(response.status, info, response.headers.get("x-request-id"));
    }
    return parsed as T;
  }
}
