/**
 * Every route of the API through the client, against a live server; one JSON line per step.
 * BASE_URL (default http://127.0.0.1:8000); TOKEN to use instead of registering (then the
 * account steps that need a password are skipped). Use a throwaway account: the demo clears
 * the account's completed tasks and, at the end, deletes the account it registered. It also
 * registers a second account to share a list with, and deletes it once done.
 *
 *   npm ci && npm run build && BASE_URL=http://127.0.0.1:8000 npm run demo
 */
import { ApiError, TaskApi } from "./task-api.js";

const baseUrl = process.env.BASE_URL ?? "http://127.0.0.1:8000";
const api = new TaskApi({ baseUrl, ...(process.env.TOKEN ? { token: process.env.TOKEN } : {}) });

function step(name: string, value: unknown): void {
  console.log(JSON.stringify({ step: name, value }));
}

/** The ApiError a call throws (any other outcome fails the demo). */
async function failure(name: string, call: () => Promise<unknown>): Promise<ApiError> {
  try {
    await call();
  } catch (error) {
    if (error instanceof ApiError) {
      step(name, { status: error.status, code: error.code, details: error.details });
      return error;
    }
    throw error;
  }
  throw new Error(`${name}: expected an ApiError`);
}

async function main(): Promise<void> {
  // The probes need no token; the generated client calls them directly.
  const health = await api.client.GET("/health");
  const ready = await api.client.GET("/health/ready");
  step("health", { health: health.data?.data, ready: ready.data?.data });

  const password = "ts-client-password";
  const email = `ts-client-${Date.now()}@example.com`;
  if (!api.accessToken) {
    const session = await api.register({ email, password });
    step("register", { email: session.user.email, expires_in: session.expires_in });
    const oauth = await api.token(email, password);
    step("token", { token_type: oauth.token_type, expires_in: oauth.expires_in });
    await api.login({ email, password });
  }
  const me = await api.me();
  step("me", me);

  // Create, with an Idempotency-Key: the retry gets the first answer, not a second task.
  const key = crypto.randomUUID();
  const created = await api.createTask({ title: "Buy milk", description: "2 litres" }, {
    idempotencyKey: key,
  });
  const again = await api.createTask({ title: "Buy milk", description: "2 litres" }, {
    idempotencyKey: key,
  });
  step("create", created);
  step("create-replayed", again);
  const id = created.task.id;
  step("list", await api.listTasks({ status: "pending", sort: "title", limit: 10 }));

  // Conditional requests: 304 for an unchanged task, 412 for a write based on a stale one.
  const got = await api.getTask(id);
  step("get", got);
  step("get-not-modified", await api.getTask(id, { ifNoneMatch: created.etag }));
  const updated = await api.updateTask(id, { title: "Buy oat milk" }, { ifMatch: created.etag });
  step("update", updated);
  await failure("update-stale", () => api.updateTask(id, { title: "x" }, { ifMatch: created.etag }));
  const replaced = await api.replaceTask(id, { title: "Buy bread" }, { ifMatch: updated.etag });
  step("replace", replaced);
  step("toggle", await api.completeTask(id));
  const set = await api.completeTask(id, false);
  step("set", set);
  await failure("delete-stale", () => api.deleteTask(id, { ifMatch: replaced.etag }));
  await api.deleteTask(id, { ifMatch: set.etag });
  step("delete", { id });
  await failure("get-deleted", () => api.getTask(id));
  // The trash: the deleted task is there; restored, then deleted and purged for good.
  const trashed = (await api.listTrash()).data.map((entry) => entry.id);
  const restored = await api.restoreTask(id);
  await api.deleteTask(id);
  await api.purgeTask(id);
  step("trash", { trashed, restored: restored.title, after: (await api.listTrash()).data.length });
  await failure("create-invalid", () => api.createTask({ title: "   " }));

  // Several tasks: bulk operations, filters, cursor pages, stats, clearing completed ones.
  const rent = (await api.createTask({ title: "Pay rent", tags: ["home"] })).task;
  const plants = (await api.createTask({ title: "Water plants", priority: "low" })).task;
  const mum = (await api.createTask({ title: "Call mum" })).task;
  const junk = (await api.createTask({ title: "Junk" })).task;
  step("create-more", [rent.id, plants.id, mum.id, junk.id]);
  const bulk = await api.bulkTasks([
    { op: "complete", id: plants.id },
    { op: "complete", id: mum.id },
    { op: "reopen", id: mum.id },
    { op: "set_priority", id: rent.id, priority: "high" },
    { op: "add_tag", id: rent.id, tag: "Bills" },
    { op: "add_tag", id: mum.id, tag: "phone" },
    { op: "remove_tag", id: mum.id, tag: "phone" },
    { op: "delete", id: junk.id },
  ]);
  step("bulk", bulk);
  step(
    "filter",
    await api.listTasks({
      status: "pending",
      priority: ["high", "medium"],
      tag: ["bills"],
      q: "rent",
      include_total: true,
    }),
  );
  // Pages of two, followed through meta.next_cursor: Call mum, Pay rent | Water plants.
  const first = await api.listTasks({ sort: "title", order: "asc", limit: 2 });
  const cursor = first.meta.next_cursor ?? null;
  const second = await api.listTasks({ sort: "title", order: "asc", limit: 2, cursor });
  step("pages", [first, second].map((page) => ({
    titles: page.data.map((task) => task.title),
    next_cursor: page.meta.next_cursor ?? null,
  })));
  const titles: string[] = [];
  for await (const task of api.allTasks({ sort: "title", limit: 1 })) titles.push(task.title);
  step("all-tasks", titles);
  step("stats", await api.taskStats()); // total 3, pending 2, completed 1
  step("clear-completed", await api.clearCompletedTasks()); // 1 (Water plants)
  step("clear-completed-again", await api.clearCompletedTasks()); // 0

  // The published contract's paths, through the generated client: the caller's own id
  // answers as /api/tasks does; another id is a task that does not exist.
  const own = await api.client.GET("/api/{user_id}/tasks", {
    params: { path: { user_id: me.id }, query: { sort: "title" } },
  });
  const other = await api.client.GET("/api/{user_id}/tasks/{task_id}", {
    params: { path: { user_id: "someone-else", task_id: rent.id } },
  });
  step("user-path", {
    own: own.data?.data.map((task) => task.title),
    other: { status: other.response.status, error: other.error },
  });

  // Keeping a copy in sync: list, then poll the change feed from the listing's cursor.
  const synced = await api.listTasks();
  const rest = await api.bulkTasks([
    { op: "delete", id: rent.id },
    { op: "delete", id: mum.id },
  ]);
  step("bulk-delete", rest);
  const changes = await api.listChanges(synced.meta.changes_cursor);
  step("changes", {
    changes: changes.data.map((change) => [change.type, change.task_id, change.task]),
    has_more: changes.meta.has_more,
  });
  // The same changes, live: the stream from the same cursor gives each with its id.
  const streaming = new AbortController();
  const streamed: unknown[] = [];
  for await (const { id, change } of api.changes.stream({
    cursor: synced.meta.changes_cursor,
    signal: streaming.signal,
  })) {
    streamed.push([change.type, change.task_id, change.task, id.length > 0]);
    if (streamed.length === changes.data.length) break;
  }
  streaming.abort();
  step("stream", streamed);
  step("stats-after", await api.taskStats());
  await failure("bulk-missing", () => api.bulkTasks([{ op: "complete", id: rent.id }]));

  // A recurring task: every Monday and Thursday at 09:00 Berlin time (CET, then CEST from
  // 31 March 2030). Completing it creates the next occurrence, once.
  const weekly = (
    await api.createTask({
      title: "Team report",
      recurrence: "FREQ=WEEKLY;BYDAY=MO,TH",
      time_zone: "Europe/Berlin",
      due_date: "2030-03-28T09:00:00+01:00",
      reminders: [{ minutes_before_due: 30 }],
    })
  ).task;
  step("recurring", {
    recurrence: weekly.recurrence,
    next_due_date: weekly.next_due_date,
    occurrences: (await api.taskOccurrences(weekly.id, { count: 3 })).occurrences,
  });
  await api.completeTask(weekly.id, true);
  await api.completeTask(weekly.id, false); // reopened: no second one later
  await api.completeTask(weekly.id, true);
  const series = await api.listTasks({ recurring: true, sort: "due_date" });
  step(
    "recurring-next",
    series.data.map((task) => [task.due_date, task.completed, task.previous_task_id === weekly.id]),
  );

  // Lists, subtasks and manual order: a list, two tasks in it, a checklist under one of them.
  const groceries = await api.createList({ name: "Groceries", color: "#2E7D32" });
  const chores = await api.createList({ name: "Errands" });
  const errands = chores.list;
  step("create-lists", [groceries, chores]);
  await failure("list-name-taken", () => api.createList({ name: "GROCERIES" }));
  const shop = groceries.list.id;
  const milk = (await api.createTask({ title: "Milk", list_id: shop })).task;
  const bread = await api.createTask({ title: "Bread", list_id: shop });
  const oat = (await api.createTask({ title: "Oat milk", parent_id: milk.id })).task;
  const whole = (await api.createTask({ title: "Whole milk", parent_id: milk.id })).task;
  step("create-in-list", [milk.id, bread.task.id, oat.id, whole.id]);
  // A list's top level in manual order: a new top-level task goes first (Bread, Milk).
  const topLevel = { list_id: shop, parent_id: "none", sort: "position" } as const;
  const shelf = async () =>
    (await api.listTasks(topLevel)).data.map((t) => [
      t.title,
      t.subtask_count,
      t.open_subtask_count,
    ]);
  step("list-page", await shelf());
  // Drag and drop: one request puts a task at an exact place (after, or before, a sibling).
  const moved = await api.moveTask(bread.task.id, { after_id: milk.id }, { ifMatch: bread.etag });
  step("move-task", { task: moved.task, etag: moved.etag, page: await shelf() });
  await failure("move-stale", () =>
    api.moveTask(bread.task.id, { before_id: milk.id }, { ifMatch: bread.etag }),
  );
  await api.moveTask(whole.id, { before_id: oat.id });
  await failure("move-cycle", () => api.moveTask(milk.id, { parent_id: oat.id }));
  const checklist = async () =>
    (await api.getTaskSubtree(milk.id)).map((t) => [t.title, t.parent_id, t.completed]);
  step("subtree", await checklist());
  // Completing a task completes its subtasks; a subtask's list is its parent's.
  await api.completeTask(milk.id, true);
  step("complete-down", await checklist());
  const subtasks = await api.listTasks({ parent_id: milk.id, sort: "position" });
  step("subtasks-page", subtasks.data.map((t) => [t.title, t.list_id]));
  step("bulk-move", await api.bulkTasks([{ op: "move", id: bread.task.id, list_id: errands.id }]));
  // The list's own routes: rename, recolour, reorder, read (with counts), delete.
  const recoloured = await api.updateList(errands.id, { color: "#ffaa00" });
  const renamed = await api.replaceList(errands.id, { name: "Chores" }, {
    ifMatch: recoloured.etag,
  });
  step("update-list", [recoloured.list.color, renamed.list.name, renamed.list.color, renamed.etag]);
  await failure("update-list-stale", () =>
    api.updateList(errands.id, { name: "x" }, { ifMatch: recoloured.etag }),
  );
  await api.moveList(errands.id, { before_id: shop }, { ifMatch: renamed.etag });
  step("lists", (await api.listLists()).map((l) => [l.name, l.task_count, l.open_task_count]));
  const shopList = await api.getList(shop);
  step("get-list", shopList);
  step("stats-by-list", (await api.taskStats()).by_list);
  const ownLists = await api.client.GET("/api/{user_id}/lists", {
    params: { path: { user_id: me.id } },
  });
  const otherList = await api.client.GET("/api/{user_id}/lists/{list_id}", {
    params: { path: { user_id: "someone-else", list_id: shop } },
  });
  step("user-lists", {
    own: ownLists.data?.data.map((l) => l.name),
    other: { status: otherList.response.status, error: otherList.error },
  });
  // Deleting a list deletes its tasks, subtasks included: one deletion each in the feed.
  const before = (await api.listTasks({ limit: 1 })).meta.changes_cursor;
  await api.deleteList(shop, { ifMatch: shopList.etag });
  const deletions = await api.listChanges(before);
  step("delete-list", {
    changes: deletions.data.map((change) => [change.type, change.task_id]),
    lists: (await api.listLists()).map((l) => l.name),
  });
  await failure("get-deleted-list", () => api.getList(shop));

  // A saved filter: applied by id, a parameter beside it replacing its own; renamed, deleted.
  await api.createTask({ title: "Renew passport", priority: "high" });
  await api.createTask({ title: "Sort photos", priority: "low" });
  const urgent = await api.createFilter({
    name: "Urgent",
    query: { priority: ["high"], sort: "title" },
  });
  const applied = await api.listTasks({ filter: urgent.id });
  const overridden = await api.listTasks({ filter: urgent.id, priority: ["low"] });
  await failure("filter-name-taken", () => api.createFilter({ name: "URGENT" }));
  const hot = await api.updateFilter(urgent.id, { name: "Hot" });
  const everything = await api.replaceFilter(urgent.id, { name: "Everything" });
  step("saved-filters", {
    query: urgent.query,
    applied: applied.data.map((t) => [t.title, t.priority]),
    overridden: overridden.data.map((t) => [t.title, t.priority]),
    renamed: [hot.name, hot.query],
    replaced: [everything.name, everything.query],
    listed: (await api.listFilters()).map((f) => f.name),
    read: (await api.getFilter(urgent.id)).name,
  });
  await api.deleteFilter(urgent.id);
  await failure("get-deleted-filter", () => api.getFilter(urgent.id));
  await api.deleteList(errands.id);

  // Comments on a task: added, paged oldest first, edited, deleted; another task's id is 404.
  const noted = (await api.createTask({ title: "Call the plumber" })).task;
  const asked = await api.addComment(noted.id, "Tuesday?");
  const booked = await api.addComment(noted.id, "Booked:\n9 am");
  const onePage = await api.listComments(noted.id, { limit: 1 });
  const nextPage = await api.listComments(noted.id, { cursor: onePage.meta.next_cursor ?? "" });
  const edited = await api.editComment(noted.id, asked.id, "Tuesday.");
  step("comments", {
    pages: [onePage.data.map((c) => c.body), nextPage.data.map((c) => c.body)],
    edited: [edited.body, edited.author_id === me.id],
  });
  const sink = (await api.createTask({ title: "Fix the sink" })).task;
  await failure("comment-elsewhere", () => api.deleteComment(sink.id, booked.id));
  await api.deleteComment(noted.id, booked.id);
  step("comments-after", (await api.listComments(noted.id)).data.map((c) => c.body));

  // Sharing a list: a second account is invited as an editor, accepts, works in the list,
  // is downgraded to viewer (its write is then 403 FORBIDDEN), and removed (then a 404).
  const mate = new TaskApi({ baseUrl });
  const mateEmail = `ts-client-mate-${Date.now()}@example.com`;
  const mateId = (await mate.register({ email: mateEmail, password })).user.id;
  const team = (await api.createList({ name: "Team" })).list;
  const flyer = (await api.createTask({ title: "Print the flyer", list_id: team.id })).task;
  const invitation = await api.createInvitation(team.id, { role: "editor", email: mateEmail });
  const pending = await api.listInvitations(team.id);
  step("invite", {
    role: invitation.role,
    status: invitation.status,
    token: invitation.token.length > 0,
    pending: pending.map((i) => [i.id === invitation.id, i.role, "token" in i]),
  });
  const joined = await mate.acceptInvitation(invitation.token);
  const shared = (await mate.listLists()).find((l) => l.id === team.id);
  step("accept", { accepted: [joined.name, joined.role], listed: [shared?.name, shared?.role] });
  const inTeam = await mate.listTasks({ list_id: team.id });
  step("member-tasks", inTeam.data.map((t) => [t.title, t.user_id === me.id]));
  const assigned = await mate.updateTask(flyer.id, { assignees: [mateId] });
  const mine = await mate.listTasks({ assignee: "me" });
  step("assign", {
    assignees: assigned.task.assignees.map((id) => id === mateId),
    assigned_to_me: mine.data.map((t) => t.title),
  });
  const members = await api.listMembers(team.id);
  step("members", members.map((m) => [m.role, m.user_id === me.id, m.email === mateEmail]));
  // The list's activity, newest first: the member's assignment, by the member.
  const [latest] = (await mate.listListActivity(team.id, { limit: 1 })).data;
  step("activity", [latest?.event, latest?.actor_id === mateId, Object.keys(latest?.changes ?? {})]);
  const viewer = await api.updateMember(team.id, mateId, "viewer");
  step("downgrade", [viewer.role, (await mate.getList(team.id)).list.role]);
  await failure("viewer-write", () => mate.updateTask(flyer.id, { title: "Print 100 flyers" }));
  await api.removeMember(team.id, mateId);
  step("remove", {
    members: (await api.listMembers(team.id)).map((m) => m.role),
    unassigned: (await api.getTask(flyer.id))?.task.assignees,
  });
  await failure("removed-read", () => mate.getTask(flyer.id));
  // A revoked invitation's token is the 404 of any unusable token.
  const spare = await api.createInvitation(team.id, { role: "viewer" });
  await api.revokeInvitation(team.id, spare.id);
  await failure("revoked-accept", () => mate.acceptInvitation(spare.token));
  // Handing the list over: the member becomes its owner, the owner an admin, who then leaves.
  await mate.acceptInvitation((await api.createInvitation(team.id, { role: "editor" })).token);
  const handed = await api.transferList(team.id, mateId);
  step("transfer", {
    role: handed.list.role,
    members: (await mate.listMembers(team.id)).map((m) => [m.role, m.user_id === mateId]),
  });
  await api.leaveList(team.id);
  await failure("left-read", () => api.getList(team.id));
  await mate.deleteMe(); // the list goes with it: nobody else is in it

  // Reminders that reach a person: a browser's subscription (keys as a browser makes them),
  // the same endpoint again, the settings.
  const browser = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, true, [
    "deriveBits",
  ]);
  const point = new Uint8Array(await crypto.subtle.exportKey("raw", browser.publicKey));
  const b64url = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64url");
  const subscription = {
    endpoint: `https://fcm.googleapis.com/fcm/send/demo-${crypto.randomUUID()}`,
    expirationTime: null,
    keys: { p256dh: b64url(point), auth: b64url(crypto.getRandomValues(new Uint8Array(16))) },
  };
  const subscribed = await api.subscribePush(subscription);
  const resubscribed = await api.subscribePush(subscription);
  const publicKey = await api.pushPublicKey();
  step("push", {
    key: Buffer.from(publicKey, "base64url").length,
    same: subscribed.id === resubscribed.id,
    listed: (await api.listPushSubscriptions()).map((s) => s.endpoint === subscription.endpoint),
    settings: await api.updateNotificationSettings({ push: false }),
  });
  await api.deletePushSubscription(subscribed.id);

  // Abort: a signal cancels the call (here, one already aborted).
  const controller = new AbortController();
  controller.abort();
  try {
    await api.listTasks({}, { signal: controller.signal });
    step("aborted", false);
  } catch (error) {
    step("aborted", error instanceof Error ? error.name : String(error));
  }

  if (process.env.TOKEN) return; // someone else's account: leave it be
  const signedIn = new TaskApi({ baseUrl, token: api.accessToken });
  await api.logoutAll(); // every token issued so far, signedIn's included
  await failure("after-logout-all", () => signedIn.me());
  await api.login({ email, password });
  await api.deleteMe();
  await failure("after-delete-me", () => api.login({ email, password }));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
