/**
 * The wrapper's retries and abort signals, checked by tests/examples/test_ts_client.py; one
 * JSON line per step.
 *
 *   node dist/checks.js rate-limited   BASE_URL = a server whose task-write limit is tiny
 *   node dist/checks.js stub           a local stub answering 503 / 409 with Retry-After
 *   node dist/checks.js limit-reached  BASE_URL = a server; lists until 422 LIMIT_REACHED
 *   node dist/checks.js chat           BASE_URL = a server whose chat model is the test's fake
 *   node dist/checks.js attachments    BASE_URL = a server (filesystem or S3 storage)
 *   node dist/checks.js due-day        BASE_URL = a server; a day round-trips as a day
 */
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { ApiError, TaskApi, dueOf, type Task, type TaskCreate } from "./task-api.js";

function step(name: string, value: unknown): void {
  console.log(JSON.stringify({ step: name, value }));
}

/** A fetch that records every answer's status. */
function counting(statuses: number[]) {
  return async (request: Request): Promise<Response> => {
    const response = await fetch(request);
    statuses.push(response.status);
    return response;
  };
}

async function rateLimited(baseUrl: string): Promise<void> {
  const statuses: number[] = [];
  const api = new TaskApi({
    baseUrl,
    fetch: counting(statuses),
    retry: { attempts: 6, maxWaitSeconds: 10 },
  });
  await api.register({ email: `retry-${Date.now()}@example.com`, password: "retry-password" });

  // More writes than the limit allows per window: each 429 is waited out, none is lost.
  statuses.length = 0;
  const started = Date.now();
  const titles: string[] = [];
  for (let n = 1; n <= 4; n++) titles.push((await api.createTask({ title: `t${n}` })).task.title);
  const seconds = (Date.now() - started) / 1000;
  const writes = [...statuses];
  const listed = (await api.listTasks({ sort: "title", order: "asc" })).data.map((t) => t.title);
  step("created-through-429s", { titles, statuses: writes, seconds, listed });

  // Without retries the 429 reaches the caller, with the wait the server asked for.
  const once = new TaskApi({ baseUrl, token: api.accessToken, retry: { attempts: 1 } });
  let refused: ApiError | undefined;
  for (let n = 0; n < 5 && !refused; n++) {
    try {
      await once.createTask({ title: "no retry" });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      refused = error;
    }
  }
  step("refused", { status: refused?.status, code: refused?.code, retryAfter: refused?.retryAfter });
}

interface Seen {
  method: string;
  url: string;
  key: string | undefined;
  body: string;
}

async function stub(): Promise<void> {
  // Scripted answers, in order; every request is recorded.
  const answers: [number, Record<string, string>, unknown][] = [
    [503, { "Retry-After": "1" }, { error: { code: "SERVICE_UNAVAILABLE", message: "down", details: [] } }],
    [200, {}, { data: { total: 0, pending: 0, completed: 0, overdue: 0, by_priority: {} } }],
    [409, { "Retry-After": "1" }, { error: { code: "IDEMPOTENCY_KEY_IN_USE", message: "busy", details: [] } }],
    [201, { ETag: '"7-1"', Location: "/api/tasks/7", "Idempotent-Replayed": "true" }, { data: { id: 7, title: "x" } }],
    [503, { "Retry-After": "120" }, { error: { code: "SERVICE_UNAVAILABLE", message: "long", details: [] } }],
    [429, { "Retry-After": "30" }, { error: { code: "RATE_LIMITED", message: "slow down", details: [] } }],
  ];
  const seen: Seen[] = [];
  const server = createServer((request: IncomingMessage, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => (body += chunk.toString()));
    request.on("end", () => {
      const key = request.headers["idempotency-key"];
      seen.push({ method: request.method ?? "", url: request.url ?? "", key: key as string | undefined, body });
      const [status, headers, payload] = answers.shift() ?? [500, {}, {}];
      response.writeHead(status, { "Content-Type": "application/json", ...headers });
      response.end(JSON.stringify(payload));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const stubUrl = `http://127.0.0.1:${port}`;
  const api = new TaskApi({ baseUrl: stubUrl, token: "t" });
  try {
    const started = Date.now();
    const stats = await api.taskStats();
    step("503-then-200", { total: stats.total, seconds: (Date.now() - started) / 1000 });
    const created = await api.createTask({ title: "x" });
    step("409-then-201", { id: created.task.id, etag: created.etag, replayed: created.replayed });
    try {
      await api.taskStats();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      step("wait-too-long", { status: error.status, retryAfter: error.retryAfter });
    }
    // An abort signal cuts a wait before a retry short: 0.3 s into a 30 s Retry-After (far
    // apart, so a slow machine cannot blur them; a 2 s window's 1-2 s wait could).
    const retry = { attempts: 2, maxWaitSeconds: 60 };
    const patient = new TaskApi({ baseUrl: stubUrl, token: "t", retry });
    const waiting = Date.now();
    let aborted = "not aborted";
    try {
      await patient.createTask({ title: "abort me" }, { signal: AbortSignal.timeout(300) });
    } catch (error) {
      aborted = error instanceof Error ? error.name : String(error);
    }
    step("aborted-wait", { error: aborted, seconds: (Date.now() - waiting) / 1000 });
    step("requests", seen);
  } finally {
    server.close();
  }
}

/** Lists are limited per user: the one past the limit is a typed LIMIT_REACHED, nothing made. */
async function limitReached(baseUrl: string): Promise<void> {
  const api = new TaskApi({ baseUrl });
  await api.register({ email: `limits-${Date.now()}@example.com`, password: "limit-password" });
  let created = 0;
  let refused: ApiError | undefined;
  while (!refused && created < 1000) {
    try {
      await api.createList({ name: `List ${created + 1}` });
      created++;
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      refused = error;
    }
  }
  // `code` is an ErrorCode: a misspelt one would not compile.
  const limit = refused?.code === "LIMIT_REACHED";
  const { status, message, details } = refused ?? {};
  step("lists-refused", { created, status, limit, message, details });
  step("lists-kept", (await api.listLists()).length);
  await api.deleteMe();
}

/** Chat: a turn, the same turn streamed, the conversation's pages, a typed error, deletion. */
async function chat(baseUrl: string): Promise<void> {
  const api = new TaskApi({ baseUrl });
  await api.register({ email: `chat-${Date.now()}@example.com`, password: "chat-password" });
  const answer = await api.chat("add a task to buy milk");
  step("chat", answer);
  const events: string[] = [];
  let text = "";
  let done: unknown = null;
  const options = { conversationId: answer.conversation_id };
  for await (const event of api.chatStream("what do I have?", options)) {
    events.push(event.event);
    if (event.event === "delta") text += event.data.text;
    if (event.event === "done") done = event.data;
  }
  step("chat-stream", { events: [...new Set(events)], text, done });
  step("conversations", (await api.listConversations({ limit: 5 })).data);
  const messages = await api.listConversationMessages(answer.conversation_id, { limit: 10 });
  step("messages", messages.data.map((m) => [m.role, m.content, m.tool_calls?.length ?? 0]));
  try {
    for await (const event of api.chatStream("hi", { conversationId: 999_999 })) void event;
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    step("chat-missing", { status: error.status, code: error.code });
  }
  await api.deleteConversation(answer.conversation_id);
  step("conversations-after", (await api.listConversations()).data.length);
  await api.deleteMe();
}

/** Files on a task: bytes and a File uploaded, listed, read, downloaded (the redirect to a
 * presigned URL followed on S3) and compared, the limits, a delete, and the 404 after it. */
async function attachments(baseUrl: string): Promise<void> {
  const api = new TaskApi({ baseUrl });
  await api.register({ email: `files-${Date.now()}@example.com`, password: "files-password" });
  const { task } = await api.createTask({ title: "File the receipt" });
  const bytes = new Uint8Array(70_000).map((_, n) => (n * 7) % 256);
  const note = new File(["Paid in full, 12 \u20ac\n"], "re\u00e7u.txt", { type: "text/plain" });
  const uploaded = [
    await api.uploadAttachment(task.id, bytes, "receipt.bin"),
    await api.uploadAttachment(task.id, note),
  ];
  step(
    "attachment-upload",
    uploaded.map((a) => [a.filename, a.size, a.sha256, a.content_type, a.task_id === task.id]),
  );
  const page = await api.listAttachments(task.id, { limit: 10 });
  step("attachments-listed", page.data.map((a) => a.id));
  step("attachment-get", (await api.getAttachment(task.id, uploaded[0]!.id)).filename);
  const downloads = [];
  for (const [index, sent] of [bytes, new Uint8Array(await note.arrayBuffer())].entries()) {
    const got = await api.downloadAttachment(task.id, uploaded[index]!.id);
    const same = got.bytes.length === sent.length && got.bytes.every((b, n) => b === sent[n]);
    downloads.push([got.filename, got.contentType, got.bytes.length, same]);
  }
  step("attachment-download", downloads);
  step("attachment-limits", await api.attachmentLimits());
  // The export holds the files' bytes as uploaded, read from the same storage.
  const exported = await api.exportAccount();
  step("export", [exported.filename, exported.contentType, exported.bytes.length > 0]);
  const zipText = new TextDecoder("latin1").decode(exported.bytes);
  step("export-members", [zipText.includes("manifest.json"), zipText.includes("receipt.bin")]);
  await api.deleteAttachment(task.id, uploaded[0]!.id);
  step("attachments-after-delete", (await api.listAttachments(task.id)).data.map((a) => a.id));
  try {
    await api.downloadAttachment(task.id, uploaded[0]!.id);
    step("attachment-deleted", null);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    step("attachment-deleted", { status: error.status, code: error.code });
  }
  await api.deleteMe();
}

/** A task due on a day: sent as `YYYY-MM-DD`, read back as that day (never an instant), kept
 * through a zone change and a PUT of what was read; an instant beside it stays an instant. */
async function dueDay(baseUrl: string): Promise<void> {
  const api = new TaskApi({ baseUrl });
  await api.register({ email: `days-${Date.now()}@example.com`, password: "days-password" });
  const seen = (task: Task) => [task.due_date, task.all_day, dueOf(task), task.time_zone];
  const body: TaskCreate = {
    title: "Pay rent",
    due_date: "2030-12-01",
    time_zone: "Pacific/Auckland",
  };
  const { task } = await api.createTask(body);
  step("day-created", seen(task));
  step("day-read", seen((await api.getTask(task.id))!.task));
  // A zone change keeps the day; the day read, sent back, is the same day.
  const moved = await api.updateTask(task.id, { time_zone: "America/New_York" });
  step("day-zone-changed", seen(moved.task));
  const { title, due_date } = moved.task;
  step("day-sent-back", seen((await api.replaceTask(task.id, { title, due_date })).task));
  const instant = await api.createTask({ title: "Call", due_date: "2030-12-01T17:00:00+01:00" });
  step("instant", seen(instant.task));
  // Due that day in New York: both bounds of the day there.
  const bounds = { due_after: "2030-12-01T05:00:00Z", due_before: "2030-12-02T05:00:00Z" };
  const page = await api.listTasks({ ...bounds, sort: "due_date", order: "asc" });
  step("due-that-day", page.data.map((t) => [t.title, t.due_date]));
  await api.deleteMe();
}

const mode = process.argv[2];
const baseUrl = process.env.BASE_URL ?? "";
const run =
  mode === "rate-limited"
    ? rateLimited(baseUrl)
    : mode === "limit-reached"
      ? limitReached(baseUrl)
      : mode === "chat"
        ? chat(baseUrl)
        : mode === "attachments"
          ? attachments(baseUrl)
          : mode === "due-day"
            ? dueDay(baseUrl)
            : stub();
run.catch((error: unknown) => {
  console.error(error instanceof Error ? error.stack : error);
  process.exit(1);
});
