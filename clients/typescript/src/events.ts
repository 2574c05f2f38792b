// Reads the live stream `GET /api/tasks/events` with `fetch`: a browser's
// EventSource cannot send `Authorization`. The stream's events are the
// changes feed's change objects (typed from the schema), each with a feed
// cursor as its id; keep the last one and pass it back as `lastEventId` to
// resume without missing anything.
import type { Change } from "./client.js";
import type { paths } from "./schema.js";

/** The path of the stream, checked against the generated schema. */
const EVENTS_PATH = "/api/tasks/events" satisfies keyof paths;

/** One event of the stream. */
export interface ChangeEvent {
  /** A feed cursor standing just after this change. */
  id: string;
  /** The change, exactly as the changes feed gives it. */
  change: Change;
}

export interface FollowOptions {
  /** Where the API lives, e.g. `https://todo.example.io`. */
  baseUrl: string;
  /** The bearer token. The stream ends when it expires. */
  token: string;
  /**
   * The id of the last event (or a feed `cursor`) this client holds: what
   * changed after it is replayed first. Without it, only changes made after
   * connecting arrive.
   */
  lastEventId?: string;
  /** Called for each change, in order. */
  onChange: (event: ChangeEvent) => void;
  /** Aborting it closes the stream. */
  signal?: AbortSignal;
  /** A fetch to use instead of the global one. */
  fetch?: typeof globalThis.fetch;
}

/** How a followed stream ended. */
export type FollowEnd =
  /** The server ended it (token expired, server stopping) or it was aborted. */
  | { kind: "ended"; lastEventId: string | undefined }
  /** The server refused it: 400, 401, 410 `cursor_expired`, 429 `too_many_streams`... */
  | { kind: "refused"; status: number; code: string | undefined; lastEventId: string | undefined };

/**
 * Follows the caller's changes until the stream ends. Resolve, then
 * reconnect with the `lastEventId` it returns (after a new token, if it
 * expired); on 410 `cursor_expired` read the feed afresh instead.
 */
export async function followChanges(options: FollowOptions): Promise<FollowEnd> {
  const fetcher = options.fetch ?? globalThis.fetch;
  const headers: Record<string, string> = {
    Accept: "text/event-stream",
    Authorization: `Bearer ${options.token}`,
  };
  if (options.lastEventId !== undefined) {
    headers["Last-Event-ID"] = options.lastEventId;
  }
  const init: RequestInit = { headers };
  if (options.signal !== undefined) {
    init.signal = options.signal;
  }
  let lastEventId = options.lastEventId;
  let response: Response;
  try {
    response = await fetcher(`${options.baseUrl}${EVENTS_PATH}`, init);
  } catch (error) {
    if (options.signal?.aborted) {
      return { kind: "ended", lastEventId };
    }
    throw error;
  }
  if (!response.ok || response.body === null) {
    let code: string | undefined;
    try {
      const body: unknown = await response.json();
      if (typeof body === "object" && body !== null && "code" in body && typeof body.code === "string") {
        code = body.code;
      }
    } catch {
      // Not JSON: the status says enough.
    }
    return { kind: "refused", status: response.status, code, lastEventId };
  }
  const parser = new EventStreamParser((id, data) => {
    const change = JSON.parse(data) as Change;
    if (id !== undefined) {
      lastEventId = id;
    }
    options.onChange({ id: id ?? "", change });
  });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        break;
      }
      parser.push(value);
    }
  } catch (error) {
    if (!options.signal?.aborted) {
      throw error;
    }
  }
  return { kind: "ended", lastEventId };
}

/**
 * The text/event-stream format, as far as this API uses it: `id:`,
 * `event:` and `data:` fields, comment lines starting with `:`, and a blank
 * line ending each event. Lines may end in LF, CRLF or CR.
 */
export class EventStreamParser {
  private buffer = "";
  private id: string | undefined;
  private data: string[] = [];

  constructor(private readonly onEvent: (id: string | undefined, data: string) => void) {}

  /** Feeds the next piece of text, which may end mid-line. */
  push(text: string): void {
    this.buffer += text;
    for (;;) {
      const end = this.buffer.search(/\r\n|\r|\n/);
      if (end < 0) {
        return;
      }
      // A CR at the very end may be half of a CRLF still on its way.
      if (this.buffer[end] === "\r" && end === this.buffer.length - 1) {
        return;
      }
      const line = this.buffer.slice(0, end);
      const width = this.buffer.startsWith("\r\n", end) ? 2 : 1;
      this.buffer = this.buffer.slice(end + width);
      this.line(line);
    }
  }

  private line(line: string): void {
    if (line === "") {
      if (this.data.length > 0) {
        this.onEvent(this.id, this.data.join("\n"));
      }
      this.data = [];
      return;
    }
    if (line.startsWith(":")) {
      return;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) {
      value = value.slice(1);
    }
    if (field === "data") {
      this.data.push(value);
    } else if (field === "id" && !value.includes("\0")) {
      // As in the standard, the last id persists across events.
      this.id = value;
    }
    // `event:` repeats what `data.op` says; `retry:` and unknown fields are
    // of no use to this client.
  }
}
