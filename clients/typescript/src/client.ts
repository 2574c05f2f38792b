// A thin typed layer over openapi-fetch: every path, parameter, body and
// answer is typed from src/schema.d.ts, which is generated from
// docs/openapi.json. Nothing here restates the API by hand.
import createClient, { type Client, type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema.js";

export type { components, paths };
export type TodoClient = Client<paths>;

type Schemas = components["schemas"];
export type Task = Schemas["Task"];
export type TaskInput = Schemas["TaskInput"];
export type TaskPatchInput = Schemas["TaskPatchInput"];
export type Credentials = Schemas["Credentials"];
export type AuthResponse = Schemas["AuthResponse"];
export type Change = Schemas["Change"];
export type Changes = Schemas["Changes"];
export type Priority = Task["priority"];

export interface TodoClientOptions {
  /** Where the API lives, e.g. `https://todo.example.io`; no trailing `/api`. */
  baseUrl: string;
  /**
   * Called before every request; the token it returns goes out as
   * `Authorization: Bearer <token>`. Undefined (signed out) sends none.
   */
  token?: () => string | undefined;
  /** A fetch to use instead of the global one (tests, server-side rendering). */
  fetch?: typeof globalThis.fetch;
}

/** The middleware that adds the bearer token, unless a call set its own. */
export function bearerToken(token: () => string | undefined): Middleware {
  return {
    onRequest({ request }) {
      const value = token();
      if (value !== undefined && !request.headers.has("Authorization")) {
        request.headers.set("Authorization", `Bearer ${value}`);
      }
      return request;
    },
  };
}

export function createTodoClient(options: TodoClientOptions): TodoClient {
  const client = createClient<paths>({
    baseUrl: options.baseUrl,
    ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
  });
  if (options.token !== undefined) {
    client.use(bearerToken(options.token));
  }
  return client;
}

/**
 * The cursor of the next page, read from a list answer's
 * `Link: </api/tasks?...&cursor=...>; rel="next"`; undefined on the last page.
 */
export function nextCursor(link: string | null): string | undefined {
  if (link === null) {
    return undefined;
  }
  for (const entry of link.split(",")) {
    const match = /^\s*<([^>]*)>\s*;(.*)$/.exec(entry);
    if (match === null) {
      continue;
    }
    const [, target = "", attributes = ""] = match;
    if (!/(?:^|;)\s*rel\s*=\s*"?next"?\s*(?:;|$)/i.test(attributes)) {
      continue;
    }
    // The target is relative to the API; any base serves to read its query.
    return new URL(target, "http://link.invalid").searchParams.get("cursor") ?? undefined;
  }
  return undefined;
}

/** An answer the caller did not expect, with the API's stable `code`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    detail: string,
  ) {
    super(`${status} ${code}: ${detail}`);
    this.name = "ApiError";
  }
}

/**
 * Turns an openapi-fetch error into an ApiError. Every error answer of this
 * API is `{code, detail}`; anything else (a proxy's HTML page) keeps its status.
 */
export function apiError(response: Response, error: unknown): ApiError {
  if (typeof error === "object" && error !== null && "code" in error && "detail" in error) {
    return new ApiError(response.status, String(error.code), String(error.detail));
  }
  return new ApiError(response.status, "unexpected_answer", response.statusText);
}
