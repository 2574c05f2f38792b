// A minimal page that keeps a live copy of the signed-in user's tasks, built
// on this client: it reads the changes feed once, then follows the event
// stream, and keeps its copy and the last event id in localStorage so that,
// reopened, it resumes the stream from there instead of reading everything
// again. e2e/sync.test.mjs drives it in two tabs of headless Chromium.
//
// Query parameters: `api`, where the API lives (default: this origin), and
// `replica`, the name of this copy. Tabs share the sign-in (one token per
// origin) but each named replica keeps its own copy and cursor, so a closed
// and reopened tab can show that it caught up by itself.
import { apiError, createTodoClient, type Task } from "../src/client.js";
import { followChanges, type ChangeEvent, type FollowEnd } from "../src/events.js";
import { createTask, setCompleted, signIn, syncTasks } from "../src/front-end.js";

const params = new URLSearchParams(location.search);
const baseUrl = params.get("api") ?? location.origin;
const replica = params.get("replica") ?? "default";
const SESSION_KEY = "todo-sync:session";
const COPY_KEY = `todo-sync:copy:${replica}`;
/** How long to wait before reconnecting a stream that ended or was refused. */
const RECONNECT_MS = 1_000;

interface Session {
  token: string;
  userId: string;
}

/** A copy of the tasks as of `cursor`; stored as one value so the two never disagree. */
interface StoredCopy {
  userId: string;
  cursor: string;
  tasks: Task[];
}

let session = readJson<Session>(SESSION_KEY);
const client = createTodoClient({ baseUrl, token: () => session?.token });
const tasks = new Map<string, Task>();
let cursor: string | undefined;
// Aborted when the tab goes away, which closes the stream on the server too.
const closing = new AbortController();
addEventListener("pagehide", () => closing.abort());

const element = <T extends HTMLElement>(id: string): T => {
  const found = document.getElementById(id);
  if (found === null) {
    throw new Error(`sync.html has no #${id}`);
  }
  return found as T;
};
const status = element<HTMLParagraphElement>("status");
const signInForm = element<HTMLFormElement>("sign-in");
const tasksView = element<HTMLElement>("tasks-view");
const newTaskForm = element<HTMLFormElement>("new-task");
const list = element<HTMLUListElement>("tasks");
const errorLine = element<HTMLParagraphElement>("error");

function readJson<T>(key: string): T | undefined {
  const text = localStorage.getItem(key);
  return text === null ? undefined : (JSON.parse(text) as T);
}

function setState(state: "signed-out" | "loading" | "connecting" | "live" | "retrying"): void {
  status.dataset.state = state;
  status.textContent = state;
}

function showError(failure: unknown): void {
  errorLine.textContent = failure instanceof Error ? failure.message : String(failure);
}

function saveCopy(userId: string): void {
  if (cursor === undefined) {
    return;
  }
  const copy: StoredCopy = { userId, cursor, tasks: [...tasks.values()] };
  localStorage.setItem(COPY_KEY, JSON.stringify(copy));
}

function render(): void {
  const rows = [...tasks.values()]
    .sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id))
    .map((task) => {
      const row = document.createElement("li");
      // What the test reads: each row names its task and state.
      row.dataset.taskId = task.id;
      row.dataset.title = task.title;
      row.dataset.completed = String(task.completed);
      const toggle = document.createElement("input");
      toggle.type = "checkbox";
      toggle.className = "toggle";
      toggle.checked = task.completed;
      const title = document.createElement("span");
      title.textContent = task.title;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "delete";
      remove.textContent = "Delete";
      row.append(toggle, " ", title, " ", remove);
      return row;
    });
  list.replaceChildren(...rows);
}

function apply(userId: string, { id, change }: ChangeEvent): void {
  if (change.op === "upsert") {
    tasks.set(change.task.id, change.task);
  } else {
    // A task created and deleted while this copy was away arrives as a
    // delete of an id it never had; removing nothing is right.
    tasks.delete(change.id);
  }
  if (id !== "") {
    cursor = id;
  }
  saveCopy(userId);
  render();
}

/** Marks the stream live as soon as its answer is in, before any event. */
const watchedFetch: typeof fetch = async (input, init) => {
  const response = await fetch(input, init);
  if (response.ok) {
    setState("live");
  }
  return response;
};

/** Reads the whole list from the feed, for a first start or an expired cursor. */
async function readAll(userId: string): Promise<void> {
  setState("loading");
  tasks.clear();
  cursor = await syncTasks(client, tasks, undefined);
  saveCopy(userId);
  render();
}

async function start(current: Session): Promise<void> {
  signInForm.hidden = true;
  tasksView.hidden = false;
  const stored = readJson<StoredCopy>(COPY_KEY);
  if (stored !== undefined && stored.userId === current.userId) {
    for (const task of stored.tasks) {
      tasks.set(task.id, task);
    }
    cursor = stored.cursor;
    render();
  } else {
    await readAll(current.userId);
  }
  // The stream replays what changed after the cursor, then goes live; each
  // time it ends (the token expired, the server restarted) it resumes from
  // the last event applied.
  while (!closing.signal.aborted) {
    setState("connecting");
    let end: FollowEnd;
    try {
      end = await followChanges({
        baseUrl,
        token: current.token,
        lastEventId: cursor,
        onChange: (event) => apply(current.userId, event),
        signal: closing.signal,
        fetch: watchedFetch,
      });
    } catch (failure) {
      // The connection dropped mid-stream: reconnect below.
      showError(failure);
      end = { kind: "ended", lastEventId: cursor };
    }
    if (end.kind === "refused") {
      if (end.code === "cursor_expired") {
        await readAll(current.userId);
        continue;
      }
      if (end.status === 401) {
        signOut();
        return;
      }
      showError(new Error(`the stream was refused: ${end.status} ${end.code ?? ""}`));
    }
    if (!closing.signal.aborted) {
      setState("retrying");
      await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
    }
  }
}

function signOut(): void {
  session = undefined;
  localStorage.removeItem(SESSION_KEY);
  tasksView.hidden = true;
  signInForm.hidden = false;
  setState("signed-out");
}

signInForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const form = new FormData(signInForm);
  signIn(client, String(form.get("email")), String(form.get("password")))
    .then((answer) => {
      session = { token: answer.access_token, userId: answer.user.id };
      localStorage.setItem(SESSION_KEY, JSON.stringify(session));
      errorLine.textContent = "";
      return start(session);
    })
    .catch(showError);
});

// Writes only go to the API: the change comes back through the stream like
// any other tab's, so there is one path by which the copy and cursor move.
newTaskForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const title = String(new FormData(newTaskForm).get("title"));
  // Cleared at once, so the next title typed is never wiped by this answer.
  newTaskForm.reset();
  createTask(client, { title }).catch(showError);
});

list.addEventListener("click", (event) => {
  const target = event.target;
  if (!(target instanceof HTMLElement)) {
    return;
  }
  const id = target.closest("li")?.dataset.taskId;
  if (id === undefined) {
    return;
  }
  if (target instanceof HTMLInputElement && target.classList.contains("toggle")) {
    setCompleted(client, id, target.checked).catch(showError);
  } else if (target.classList.contains("delete")) {
    client
      .DELETE("/api/tasks/{id}", { params: { path: { id } } })
      .then(({ error, response }) => {
        if (!response.ok) {
          throw apiError(response, error);
        }
      })
      .catch(showError);
  }
});

if (session === undefined) {
  signOut();
} else {
  start(session).catch(showError);
}
