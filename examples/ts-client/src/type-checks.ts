/**
 * Compile-time checks: `tsc` fails if the generated types stop catching these mistakes (each
 * `@ts-expect-error` must see an error). Never executed.
 */
import type { BulkOperation, TaskApiClient, TaskCreate } from "./client.js";

export function typeChecks(client: TaskApiClient): void {
  // @ts-expect-error title is required
  const missingTitle: TaskCreate = { description: "no title" };
  // @ts-expect-error title is a string
  void client.createTask({ title: 42 });
  // @ts-expect-error status is one of all | pending | completed
  void client.listTasks({ status: "done" });
  // @ts-expect-error ids are numbers
  void client.getTask("1");
  // @ts-expect-error priority is an array of none | low | medium | high
  void client.listTasks({ priority: ["urgent"] });
  // @ts-expect-error bulk ops are complete | reopen | delete | set_priority | add_tag | remove_tag
  void client.bulk([{ op: "archive", id: 1 }]);
  // @ts-expect-error set_priority needs a priority
  void client.bulk([{ op: "set_priority", id: 1 }]);
  // @ts-expect-error add_tag needs a tag
  const noTag: BulkOperation = { op: "add_tag", id: 1 };
  // @ts-expect-error complete takes no extra fields
  void client.bulk([{ op: "complete", id: 1, tag: "x" }]);
  // @ts-expect-error bulk takes an array of operations, not the request body
  void client.bulk({ operations: [{ op: "delete", id: 1 }] });
  void missingTitle;
  void noTag;
}
