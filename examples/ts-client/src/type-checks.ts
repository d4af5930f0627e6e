/**
 * Compile-time checks: `tsc` fails if the generated types stop catching these mistakes (each
 * `@ts-expect-error` must see an error). Never executed.
 */
import type {
  BulkOperation,
  ErrorCode,
  ListMove,
  Member,
  Role,
  Task,
  TaskApi,
  TaskCreate,
  TaskMove,
  TaskQuery,
} from "./task-api.js";
import { dueOf } from "./task-api.js";

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

  // Lists, subtasks and manual order. What must compile:
  const listPage: TaskQuery = { list_id: 7, parent_id: "none", sort: "position" };
  const noList: TaskQuery = { list_id: "none", parent_id: 42 };
  const drag: TaskMove = { after_id: 41 };
  const reparent: TaskMove = { list_id: 7, parent_id: 40 };
  const toTop: TaskMove = { list_id: null, parent_id: null };
  const lastList: ListMove = {};
  const task = got!.task;
  const placed: (number | null)[] = [task.list_id, task.parent_id];
  const position: number = task.position;
  const counts: (number | null)[] = [task.subtask_count, task.open_subtask_count];
  const limit: ErrorCode = "LIMIT_REACHED";
  void api.createTask({ title: "Oat milk", list_id: 7, parent_id: 40 });
  void api.updateTask(1, { list_id: null, parent_id: null });
  void api.bulkTasks([{ op: "move", id: 1, list_id: 7 }, { op: "move", id: 2, list_id: null }]);
  const { list } = await api.createList({ name: "Groceries", color: "#2e7d32" });
  const [first] = await api.listLists();
  const subtree: Task[] = await api.getTaskSubtree(1);
  const stats = await api.taskStats();
  const byList: (number | null)[] = stats.by_list.map((entry) => entry.list_id);
  const open: number = list.open_task_count;
  // And what must not:
  // @ts-expect-error list_id is a list's id or "none"
  void api.listTasks({ list_id: "groceries" });
  // @ts-expect-error parent_id is a task's id or "none"
  void api.listTasks({ parent_id: "top" });
  // @ts-expect-error sort=position is manual order; there is no "manual"
  void api.listTasks({ sort: "manual" });
  // @ts-expect-error position is the server's: a task is placed by moving it
  void api.createTask({ title: "x", position: 3 });
  // @ts-expect-error subtask counts are read-only
  void api.updateTask(1, { subtask_count: 0 });
  // @ts-expect-error a move names its anchor by id
  void api.moveTask(1, { after_id: "41" });
  // @ts-expect-error a move takes no position: it says where, the server picks the number
  void api.moveTask(1, { position: 65536 });
  // @ts-expect-error moveTask needs a body ({} keeps the task's list and parent, last)
  void api.moveTask(1);
  // @ts-expect-error a bulk move needs list_id (null: no list)
  void api.bulkTasks([{ op: "move", id: 1 }]);
  // @ts-expect-error a bulk move takes no anchor
  void api.bulkTasks([{ op: "move", id: 1, list_id: 7, after_id: 2 }]);
  // @ts-expect-error a list needs a name
  void api.createList({ color: "#2e7d32" });
  // @ts-expect-error a colour is a "#rrggbb" string
  void api.updateList(7, { color: 0x2e7d32 });
  // @ts-expect-error list ids are numbers
  void api.getList("7");
  // @ts-expect-error a list moves among lists: no parent
  void api.moveList(7, { parent_id: 1 });
  // @ts-expect-error an ETag is a string
  void api.deleteList(7, { ifMatch: 1 });
  // @ts-expect-error the subtree is tasks, not a page
  void (await api.getTaskSubtree(1)).meta;
  // @ts-expect-error a list's counts are numbers
  const named: string = first!.task_count;
  // @ts-expect-error no such error code (a typo is caught)
  const typo: ErrorCode = "LIMIT_REACHD";
  // @ts-expect-error the list routes' paths need a list id
  void api.client.GET("/api/lists/{list_id}", { params: { path: {} } });
  void [listPage, noList, drag, reparent, toTop, lastList, placed, position, counts, limit];
  void subtree;
  void [byList, open, named, typo];
  void missingTitle;
  void noTag;

  // Sharing: roles are named, members and assignees are user ids. What must compile:
  const role: Role = list.role;
  const assignees: string[] = task.assignees;
  const assignedToMe: TaskQuery = { assignee: "me", list_id: 7 };
  const [owner]: Member[] = await api.listMembers(7);
  const joined: Role = (await api.acceptInvitation("token")).role;
  const { token } = await api.createInvitation(7, { role: "editor", email: "ada@example.com" });
  void api.updateMember(7, "5f0c6e8e", "viewer");
  void api.updateTask(1, { assignees: ["5f0c6e8e"] });
  void api.transferList(7, owner!.user_id);
  // And what must not:
  // @ts-expect-error an owner is made by transferList, not by changing a role
  void api.updateMember(7, "5f0c6e8e", "owner");
  // @ts-expect-error no such role
  void api.createInvitation(7, { role: "guest" });
  // @ts-expect-error an invitation makes a member, never the owner
  void api.createInvitation(7, { role: "owner" });
  // @ts-expect-error a member is named by its user id (a string)
  void api.removeMember(7, 42);
  // @ts-expect-error assignees are user ids
  void api.updateTask(1, { assignees: [42] });
  // @ts-expect-error acceptInvitation takes the token itself
  void api.acceptInvitation({ token: "x" });
  // @ts-expect-error the pending invitations never carry their tokens
  void (await api.listInvitations(7))[0]?.token;
  // @ts-expect-error revoking names the invitation by id
  void api.revokeInvitation(7, "3");
  void [role, assignees, assignedToMe, joined, token];

  // Chat: a message is a string, a conversation an id; events are typed by their name.
  // @ts-expect-error the message is a string
  void api.chat({ message: "hi" });
  // @ts-expect-error conversation ids are numbers
  void api.chat("hi", { conversationId: "3" });
  const answer = await api.chat("add milk");
  const calls: string[] = answer.tool_calls.map((call) => call.name);
  for await (const event of api.chatStream("add milk")) {
    if (event.event === "delta") void event.data.text.length;
    // @ts-expect-error a delta carries text, not a conversation id
    if (event.event === "delta") void event.data.conversation_id;
  }
  // @ts-expect-error a conversation's page is one of its conversations: no messages in it
  void (await api.listConversations()).data[0]?.content;
  void calls;

  // Attachments: ids are numbers, a file is a Blob or bytes; an answer is typed as measured.
  // @ts-expect-error a task id is a number
  void api.uploadAttachment("1", new Uint8Array(1), "a.bin");
  // @ts-expect-error a file is a Blob, a File or bytes, not a path
  void api.uploadAttachment(1, "./receipt.pdf");
  // @ts-expect-error a download names the task and the attachment
  void api.downloadAttachment(1);
  const stored = await api.getAttachment(1, 2);
  const measured: number = stored.size;
  // @ts-expect-error no storage key is ever shown
  void stored.storage_key;
  const file = await api.downloadAttachment(1, 2);
  const firstByte: number | undefined = file.bytes[0];
  // @ts-expect-error the limits' numbers are numbers
  const quota: string = (await api.attachmentLimits()).quota_bytes;
  void [measured, firstByte, quota];

  // Due dates: a string, a day (YYYY-MM-DD) or an instant; `all_day` says which.
  const dueText: string | null = task.due_date;
  const allDay: boolean = task.all_day;
  const due = dueOf(task);
  const dayOrInstant: string | Date | undefined = due?.kind === "day" ? due.day : due?.at;
  void api.createTask({ title: "Rent", due_date: "2030-12-01", time_zone: "Pacific/Auckland" });
  // @ts-expect-error a day stays its string, never a Date (midnight UTC is another day elsewhere)
  if (due?.kind === "day") void due.day.getTime();
  // @ts-expect-error all_day is the server's: a day is set by sending due_date as YYYY-MM-DD
  void api.createTask({ title: "x", due_date: "2030-12-01", all_day: true });
  // @ts-expect-error a due date is a string, not a Date
  void api.updateTask(1, { due_date: new Date() });
  void [dueText, allDay, dayOrInstant];
}
