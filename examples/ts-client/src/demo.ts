/**
 * Runs the client through every task route against a live API and prints one JSON line per
 * step. BASE_URL (default http://127.0.0.1:8000); TOKEN to use instead of registering.
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
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
