/**
 * Compile-time checks: `tsc` fails if the generated types stop catching these mistakes (each
 * `@ts-expect-error` must see an error). Never executed.
 */
import type { BulkOperation, TaskApi, TaskCreate } from "./task-api.js";

export async function typeChecks(api: TaskApi): Promise<void> {
  // @ts-expect-error title is required
  const missingTitle: TaskCreate = { description: "no title" };
  // @ts-expect-error title is a string
  void api.createTask({ title: 42 });
  // @ts-expect-error status is one of all | pending | completed
  void api.listTasks({ status: "done" });
  // @ts-expect-error ids are numbers
  void api.getTask("1");
  // @ts-expect-error priority is an array of none | low | medium | high
  void api.listTasks({ priority: ["urgent"] });
  // @ts-expect-error bulk ops are complete | reopen | delete | set_priority | add_tag | remove_tag
  void api.bulkTasks([{ op: "archive", id: 1 }]);
  // @ts-expect-error set_priority needs a priority
  void api.bulkTasks([{ op: "set_priority", id: 1 }]);
  // @ts-expect-error add_tag needs a tag
  const noTag: BulkOperation = { op: "add_tag", id: 1 };
  // @ts-expect-error complete takes no extra fields
  void api.bulkTasks([{ op: "complete", id: 1, tag: "x" }]);
  // @ts-expect-error time_zone is an IANA name (the enum lists them)
  void api.createTask({ title: "x", time_zone: "Mars/Olympus_Mons" });
  // @ts-expect-error a reminder is { minutes_before_due } or { at }
  void api.createTask({ title: "x", reminders: [{ minutes: 5 }] });
  // @ts-expect-error the preview's count is a number
  void api.taskOccurrences(1, { count: "3" });
  // @ts-expect-error an ETag is a string
  void api.updateTask(1, {}, { ifMatch: 3 });
  // The generated client knows every path and its parameters:
  // @ts-expect-error no such path
  void api.client.GET("/api/task");
  // @ts-expect-error task_id is required
  void api.client.GET("/api/tasks/{task_id}", { params: { path: {} } });
  // @ts-expect-error the published paths need the user id
  void api.client.GET("/api/{user_id}/tasks", { params: { path: { task_id: 1 } } });
  const got = await api.getTask(1);
  // @ts-expect-error null when If-None-Match names the current ETag (304)
  void got.task;
  void missingTitle;
  void noTag;
}
