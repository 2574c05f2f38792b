// The calls a web front end makes, written as it would write them. CI only
// type-checks this file (`npm run check`): if docs/openapi.json stops
// describing one of these calls, tsc fails here.
import {
  ApiError,
  apiError,
  createTodoClient,
  nextCursor,
  type AuthResponse,
  type Changes,
  type Task,
  type TaskInput,
  type TaskPatchInput,
  type TodoClient,
} from "./client.js";

/** A task with the `ETag` it was answered with, for the next conditional write. */
export interface Versioned {
  task: Task;
  etag: string;
}

function etagOf(response: Response): string {
  const etag = response.headers.get("ETag");
  if (etag === null) {
    throw new Error(`${response.url}: a task answer without an ETag`);
  }
  return etag;
}

export async function signIn(client: TodoClient, email: string, password: string): Promise<AuthResponse> {
  const { data, error, response } = await client.POST("/api/auth/signin", {
    body: { email, password },
  });
  if (data === undefined) {
    // 401 invalid_credentials, 429 rate_limited (with Retry-After), ...
    throw apiError(response, error);
  }
  return data;
}

/** What the "open tasks" view filters on; the rest of its query is fixed. */
export interface OpenTasksFilter {
  label?: string;
  search?: string;
}

export interface TaskPage {
  tasks: Task[];
  /** How many tasks match in all, the same on every page. */
  total: number;
  /** Pass it back, with the same filter, for the next page; undefined on the last. */
  cursor: string | undefined;
}

/**
 * One page of open tasks, soonest due first, 20 at a time. A cursor is bound
 * to the query it came from, so the next page must repeat the same filter.
 */
export async function listOpenTasks(
  client: TodoClient,
  filter: OpenTasksFilter,
  cursor?: string,
): Promise<TaskPage> {
  const { data, error, response } = await client.GET("/api/tasks", {
    params: {
      query: {
        completed: false,
        sort: "due_at",
        order: "asc",
        limit: 20,
        label: filter.label === undefined ? undefined : [filter.label],
        q: filter.search,
        cursor,
      },
    },
  });
  if (data === undefined) {
    // 400 invalid_query or invalid_cursor: `detail` names the parameter.
    throw apiError(response, error);
  }
  return {
    tasks: data,
    total: Number(response.headers.get("X-Total-Count") ?? data.length),
    cursor: nextCursor(response.headers.get("Link")),
  };
}

/** Every open task that matches, following the `Link` cursor page after page. */
export async function allOpenTasks(client: TodoClient, filter: OpenTasksFilter): Promise<Task[]> {
  const tasks: Task[] = [];
  let cursor: string | undefined;
  do {
    const page = await listOpenTasks(client, filter, cursor);
    tasks.push(...page.tasks);
    cursor = page.cursor;
  } while (cursor !== undefined);
  return tasks;
}

/** Overdue high-priority work, another list the front end shows. */
export async function overdueUrgent(client: TodoClient): Promise<Task[]> {
  const { data, error, response } = await client.GET("/api/tasks", {
    params: { query: { overdue: true, priority: "high", sort: "due_at" } },
  });
  if (data === undefined) {
    throw apiError(response, error);
  }
  return data;
}

export async function getTask(client: TodoClient, id: string): Promise<Versioned> {
  const { data, error, response } = await client.GET("/api/tasks/{id}", {
    params: { path: { id } },
  });
  if (data === undefined) {
    throw apiError(response, error);
  }
  return { task: data, etag: etagOf(response) };
}

/**
 * Creates a task. The key is chosen once, before the first attempt, so a
 * retry after a lost answer replays the first creation instead of making a
 * second task.
 */
export async function createTask(
  client: TodoClient,
  input: TaskInput,
  idempotencyKey: string = crypto.randomUUID(),
): Promise<Versioned & { replayed: boolean }> {
  for (let attempt = 1; ; attempt++) {
    let answer;
    try {
      answer = await client.POST("/api/tasks", {
        params: { header: { "Idempotency-Key": idempotencyKey } },
        body: input,
      });
    } catch (networkError) {
      // fetch rejects when no answer came back: the task may or may not exist.
      if (attempt < 3) {
        continue;
      }
      throw networkError;
    }
    const { data, error, response } = answer;
    if (data !== undefined) {
      return {
        task: data,
        etag: etagOf(response),
        replayed: response.headers.get("Idempotent-Replayed") === "true",
      };
    }
    if (error?.code === "idempotency_key_in_use" && attempt < 3) {
      // The first attempt is still running on the server; ask again shortly.
      await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
      continue;
    }
    throw apiError(response, error);
  }
}

/**
 * An editor's partial save: only the fields the user touched, as a JSON Merge
 * Patch, and only if nobody changed the task since `etag` was read.
 */
export async function patchTask(
  client: TodoClient,
  previous: Versioned,
  patch: TaskPatchInput,
): Promise<Versioned> {
  const { data, error, response } = await client.PATCH("/api/tasks/{id}", {
    params: { path: { id: previous.task.id }, header: { "If-Match": previous.etag } },
    headers: { "Content-Type": "application/merge-patch+json" },
    body: patch,
  });
  if (data === undefined) {
    // 412 precondition_failed: the task changed meanwhile; see updateTask.
    throw apiError(response, error);
  }
  return { task: data, etag: etagOf(response) };
}

/** The outcome of a conditional write the user may have to settle. */
export type UpdateOutcome =
  | { kind: "saved"; saved: Versioned }
  | { kind: "conflict"; current: Versioned };

/**
 * A conditional full update: replace the task only if it is still the
 * version the user edited. On 412 the current version is read again and
 * handed back, so the view can show both and let the user choose.
 */
export async function updateTask(
  client: TodoClient,
  edited: Versioned,
  input: TaskInput,
): Promise<UpdateOutcome> {
  const { data, error, response } = await client.PUT("/api/tasks/{id}", {
    params: { path: { id: edited.task.id }, header: { "If-Match": edited.etag } },
    body: input,
  });
  if (data !== undefined) {
    return { kind: "saved", saved: { task: data, etag: etagOf(response) } };
  }
  if (error?.code === "precondition_failed") {
    return { kind: "conflict", current: await getTask(client, edited.task.id) };
  }
  throw apiError(response, error);
}

/**
 * Read, change, write; on 412 read again and re-apply the change, a few
 * times. For changes that make sense on any version (add a label).
 */
export async function updateWithRetry(
  client: TodoClient,
  id: string,
  change: (current: Task) => TaskInput,
  attempts = 3,
): Promise<Versioned> {
  let current = await getTask(client, id);
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const outcome = await updateTask(client, current, change(current.task));
    if (outcome.kind === "saved") {
      return outcome.saved;
    }
    current = outcome.current;
  }
  throw new Error(`task ${id} kept changing; gave up after ${attempts} attempts`);
}

/** The checkbox: sets the state, safe to retry with the same key. */
export async function setCompleted(
  client: TodoClient,
  id: string,
  completed: boolean,
  idempotencyKey: string = crypto.randomUUID(),
): Promise<Versioned> {
  const { data, error, response } = await client.PATCH("/api/tasks/{id}/complete", {
    params: { path: { id }, header: { "Idempotency-Key": idempotencyKey } },
    body: { completed },
  });
  if (data === undefined) {
    throw apiError(response, error);
  }
  return { task: data, etag: etagOf(response) };
}

/** Deletes a task unless it changed since it was shown; false on 412. */
export async function deleteTask(client: TodoClient, shown: Versioned): Promise<boolean> {
  const { error, response } = await client.DELETE("/api/tasks/{id}", {
    params: { path: { id: shown.task.id }, header: { "If-Match": shown.etag } },
  });
  if (response.status === 204) {
    return true;
  }
  if (error?.code === "precondition_failed") {
    return false;
  }
  throw apiError(response, error);
}

/** "Clear completed": answers how many tasks went. */
export async function clearCompleted(client: TodoClient): Promise<number> {
  const { data, error, response } = await client.DELETE("/api/tasks", {
    params: { query: { completed: "true" } },
  });
  if (data === undefined) {
    throw apiError(response, error);
  }
  return data.deleted;
}

/**
 * One page of what changed after `since` (every task, without it). A 410
 * cursor_expired means the kept history no longer reaches back that far:
 * the caller drops what it holds and reads again without `since`.
 */
export async function changesSince(client: TodoClient, since?: string): Promise<Changes> {
  const { data, error, response } = await client.GET("/api/tasks/changes", {
    params: { query: { since } },
  });
  if (data === undefined) {
    // 400 invalid_cursor or invalid_query, 410 cursor_expired.
    throw apiError(response, error);
  }
  return data;
}

/**
 * Brings a local copy of the tasks up to date: applies every page of changes
 * after `cursor`, starting afresh when the cursor has expired; answers the
 * cursor to keep for next time.
 */
export async function syncTasks(
  client: TodoClient,
  local: Map<string, Task>,
  cursor: string | undefined,
): Promise<string> {
  let since = cursor;
  for (;;) {
    let page: Changes;
    try {
      page = await changesSince(client, since);
    } catch (failure) {
      if (since !== undefined && failure instanceof ApiError && failure.code === "cursor_expired") {
        local.clear();
        since = undefined;
        continue;
      }
      throw failure;
    }
    for (const change of page.changes) {
      if (change.op === "upsert") {
        local.set(change.task.id, change.task);
      } else {
        local.delete(change.id);
      }
    }
    since = page.cursor;
    if (!page.has_more) {
      return since;
    }
  }
}

/** A session as the front end runs one, from sign-in to clearing done tasks. */
export async function session(baseUrl: string, email: string, password: string): Promise<void> {
  let token: string | undefined;
  const client = createTodoClient({ baseUrl, token: () => token });
  token = (await signIn(client, email, password)).access_token;

  const created = await createTask(client, {
    title: "Buy milk",
    due_at: "2026-12-24T18:00:00Z",
    priority: "medium",
    labels: ["home"],
  });
  const open = await allOpenTasks(client, { label: "home", search: "milk" });
  console.log(`${open.length} open task(s) about milk`);

  const patched = await patchTask(client, created, { priority: "high", due_at: null });
  const outcome = await updateTask(client, patched, {
    title: patched.task.title,
    labels: [...patched.task.labels, "errand"],
  });
  if (outcome.kind === "conflict") {
    console.log(`changed elsewhere, now: ${outcome.current.task.title}`);
  }
  await updateWithRetry(client, created.task.id, (task) => ({ title: task.title, completed: true }));
  await setCompleted(client, created.task.id, true);
  console.log(`cleared ${await clearCompleted(client)} completed task(s)`);

  const local = new Map<string, Task>();
  const cursor = await syncTasks(client, local, undefined);
  await syncTasks(client, local, cursor);
}
