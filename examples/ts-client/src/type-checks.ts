/**
 * Compile-time checks: `tsc` fails if the generated types stop catching these mistakes (each
 * `@ts-expect-error` must see an error). Never executed.
 */
import type { TaskApiClient, TaskCreate } from "./client.js";

export function typeChecks(client: TaskApiClient): void {
  // @ts-expect-error title is required
  const missingTitle: TaskCreate = { description: "no title" };
  // @ts-expect-error title is a string
  void client.createTask({ title: 42 });
  // @ts-expect-error status is one of all | pending | completed
  void client.listTasks({ status: "done" });
  // @ts-expect-error ids are numbers
  void client.getTask("1");
  void missingTitle;
}
