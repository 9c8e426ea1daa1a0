// The typed API client: openapi-fetch over the generated `paths`, with the bearer token,
// logout on 401, and errors turned into `ApiError` / `NetworkError`.
import createClient, { type Middleware } from "openapi-fetch";
import type { paths } from "./schema";

/** One invalid input of a 422 answer (FastAPI's shape). */
export interface FieldError {
  loc: (string | number)[];
  msg: string;
  type?: string;
}

/** The server answered with an error status. */
export class ApiError extends Error {
  readonly status: number;
  /** `detail` of the body when it was a string. */
  readonly detail: string;
  /** The offending fields of a 422. */
  readonly fields: FieldError[];

  constructor(status: number, detail: string, fields: FieldError[] = []) {
    super(fields.length ? fields.map((f) => `${fieldName(f)}: ${f.msg}`).join("; ") : detail);
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
    this.fields = fields;
  }

  /** The message for one field (e.g. `"username"` or `"limit"`), if it was refused. */
  fieldMessage(name: string): string | undefined {
    return this.fields.find((f) => fieldName(f) === name)?.msg;
  }
}

/** The request never got an answer (server down, connection refused, aborted). */
export class NetworkError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NetworkError";
  }
}

/** The field a 422 entry names: the last element of its `loc` after `body`/`query`/`path`. */
export function fieldName(f: FieldError): string {
  const rest = f.loc.slice(1);
  return rest.length ? rest.map(String).join(".") : String(f.loc[0] ?? "");
}

/** Builds an `ApiError` from a response and its decoded body (JSON or text). */
export function toApiError(status: number, body: unknown): ApiError {
  if (body && typeof body === "object" && "detail" in body) {
    const d = (body as { detail: unknown }).detail;
    if (Array.isArray(d)) {
      const fields: FieldError[] = d
        .filter((x): x is FieldError => !!x && typeof x === "object" && Array.isArray(x.loc))
        .map((x) => ({ loc: x.loc, msg: String(x.msg ?? "invalid"), type: x.type }));
      return new ApiError(status, "invalid input", fields);
    }
    if (typeof d === "string") return new ApiError(status, d);
  }
  if (typeof body === "string" && body.trim()) return new ApiError(status, body.trim().slice(0, 300));
  return new ApiError(status, `HTTP ${status}`);
}

export interface ApiOptions {
  baseUrl?: string;
  /** The current bearer token, if logged in. */
  getToken: () => string | null;
  /** Called when an authenticated request is answered 401 (token expired or revoked). */
  onUnauthorized: () => void;
  fetch?: (input: Request) => Promise<Response>;
}

export type Client = ReturnType<typeof createClient<paths>>;

/** What openapi-fetch resolves to. */
interface FetchResult<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

export interface Api {
  client: Client;
  /** Awaits an openapi-fetch call: its data, or throws `ApiError` / `NetworkError`. */
  run<T>(call: Promise<FetchResult<T>>): Promise<T>;
  /** As `run`, with the response (for headers such as X-Total-Count). */
  runWithResponse<T>(call: Promise<FetchResult<T>>): Promise<{ data: T; response: Response }>;
}

export function createApi(opts: ApiOptions): Api {
  const f = opts.fetch ?? ((input: Request) => globalThis.fetch(input));
  const client = createClient<paths>({ baseUrl: opts.baseUrl ?? "", fetch: f });
  const auth: Middleware = {
    onRequest({ request }) {
      const token = opts.getToken();
      if (token && !request.headers.has("authorization")) {
        request.headers.set("authorization", `Bearer ${token}`);
      }
      return request;
    },
    onResponse({ request, response }) {
      if (response.status === 401 && request.headers.has("authorization")) {
        opts.onUnauthorized();
      }
      return response;
    },
  };
  client.use(auth);

  async function runWithResponse<T>(call: Promise<FetchResult<T>>) {
    let r: FetchResult<T>;
    try {
      r = await call;
    } catch (e) {
      if (e instanceof ApiError) throw e;
      const msg = e instanceof Error ? e.message : String(e);
      throw new NetworkError(`cannot reach the server: ${msg}`, { cause: e });
    }
    if (!r.response.ok) throw toApiError(r.response.status, r.error);
    return { data: r.data as T, response: r.response };
  }

  return {
    client,
    runWithResponse,
    run: async (call) => (await runWithResponse(call)).data,
  };
}

/** A short message for any error a query or mutation may throw. */
export function errorMessage(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.status === 403) return `not allowed for your role (${e.detail})`;
    if (e.status === 429) return "too many requests: the server is rate-limiting, retrying shortly";
    return e.message;
  }
  if (e instanceof NetworkError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

/** Retry policy for queries: never on 4xx answers, up to twice otherwise. */
export function shouldRetry(failures: number, e: unknown): boolean {
  if (e instanceof ApiError && e.status >= 400 && e.status < 500 && e.status !== 429) return false;
  return failures < 2;
}
