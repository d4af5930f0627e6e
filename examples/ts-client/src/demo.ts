/**
 * Runs the client through every task route against a live API and prints one JSON line per
 * step. BASE_URL (default http://127.0.0.1:8000); TOKEN to use instead of registering.
 * Use a throwaway account: the demo's `clearCompleted()` deletes ALL of the account's completed
 * tasks, and its stats are only the numbers shown in the comments on a fresh one.
 *
 *   npm ci && npm run build && BASE_URL=http://127.0.0.1:8000 npm run demo
 */
import { ApiError, TaskApiClient } from "./client.js";

const client = new TaskApiClient({
  baseUrl: process.env.BASE_URL ?? "http://127.0.0.1:8000",
  ...(process.env.TOKEN ? { token: process.env.TOKEN } : {}),
});

function step(name: string, value: unknown): void {
  console.log(JSON.stringify({ step: name, value }));
}

async function expectError(name: string, call: () => Promise<unknown>): Promise<void> {
  try {
    await call();
  } catch (error) {
    if (error instanceof ApiError) {
      step(name, { status: error.status, code: error.code, details: error.details });
      return;
    }
    throw error;
  }
  throw new Error(`${name}: expected an ApiError`);
}

async function main(): Promise<void> {
  if (!client.token) {
    const email = `ts-client-${Date.now()}@example.com`;
    const session = await client.register({ email, password: "ts-client-password" });
    step("register", { email: session.user.email, expires_in: session.expires_in });
  }
  step("me", await client.me());

  const created = await client.createTask({ title: "Buy milk", description: "2 litres" });
  step("create", created);
  step("list", await client.listTasks({ status: "pending", sort: "title", limit: 10 }));
  step("get", await client.getTask(created.id));
  step("update", await client.updateTask(created.id, { title: "Buy oat milk" }));
  step("replace", await client.replaceTask(created.id, { title: "Buy bread" }));
  step("toggle", await client.completeTask(created.id));
  step("set", await client.completeTask(created.id, false));
  await client.deleteTask(created.id);
  step("delete", { id: created.id });
  await expectError("get-deleted", () => client.getTask(created.id));
  await expectError("create-invalid", () => client.createTask({ title: "   " }));

  // Several tasks: bulk operations, filters, cursor pages, stats, clearing completed ones.
  const rent = await client.createTask({ title: "Pay rent", tags: ["home"] });
  const plants = await client.createTask({ title: "Water plants", priority: "low" });
  const mum = await client.createTask({ title: "Call mum" });
  const junk = await client.createTask({ title: "Junk" });
  step("create-more", [rent.id, plants.id, mum.id, junk.id]);
  const bulk = await client.bulk([
    { op: "complete", id: plants.id },
    { op: "complete", id: mum.id },
    { op: "reopen", id: mum.id },
    { op: "set_priority", id: rent.id, priority: "high" },
    { op: "add_tag", id: rent.id, tag: "Bills" },
    { op: "add_tag", id: mum.id, tag: "phone" },
    { op: "remove_tag", id: mum.id, tag: "phone" },
    { op: "delete", id: junk.id },
  ]);
  step("bulk", bulk.results);
  step(
    "filter",
    await client.listTasks({
      status: "pending",
      priority: ["high", "medium"],
      tag: ["bills"],
      q: "rent",
      include_total: true,
    }),
  );
  // Follow meta.next_cursor until it is null: Call mum, Pay rent, Water plants.
  const pages: { titles: string[]; next_cursor: string | null }[] = [];
  let cursor: string | undefined;
  do {
    const query = { sort: "title", order: "asc", limit: 2, ...(cursor ? { cursor } : {}) } as const;
    const page = await client.listTasks(query);
    const next = page.meta.next_cursor ?? null;
    pages.push({ titles: page.data.map((task) => task.title), next_cursor: next });
    cursor = page.meta.next_cursor ?? undefined;
  } while (cursor);
  step("pages", pages);
  step("stats", await client.stats()); // total 3, pending 2, completed 1, by_priority high 1, low 1
  step("clear-completed", await client.clearCompleted()); // deleted 1 (Water plants)
  step("clear-completed-again", await client.clearCompleted()); // deleted 0
  const rest = await client.bulk([
    { op: "delete", id: rent.id },
    { op: "delete", id: mum.id },
  ]);
  step("bulk-delete", rest.results);
  step("stats-after", await client.stats());
  await expectError("bulk-missing", () => client.bulk([{ op: "complete", id: rent.id }]));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
