import { describe, expect, it, vi } from "vitest";
import { ApiError, NetworkError, createApi, errorMessage, shouldRetry, toApiError } from "../src/api/client";

function json(status: number, body: unknown, headers: Record<string, string> = {}) {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}

function setup(respond: (req: Request) => Response | Promise<Response>, token: string | null = "tok") {
  const onUnauthorized = vi.fn();
  const seen: Request[] = [];
  const api = createApi({
    baseUrl: "http://test",
    getToken: () => token,
    onUnauthorized,
    fetch: async (req: Request) => {
      seen.push(req);
      return respond(req);
    },
  });
  return { api, onUnauthorized, seen };
}

describe("API client", () => {
  it("sends the bearer token and returns the data", async () => {
    const { api, seen } = setup(() => json(200, { total: 1, critical: 0, unresolved: 1, false_positives: 0 }));
    const stats = await api.run(api.client.GET("/api/alerts/stats"));
    expect(stats.total).toBe(1);
    expect(seen[0]!.headers.get("authorization")).toBe("Bearer tok");
  });

  it("passes query parameters", async () => {
    const { api, seen } = setup(() => json(200, { alerts: [], total: 0, page: 1, pages: 0, limit: 5 }));
    await api.run(api.client.GET("/api/alerts", { params: { query: { severity: "high", limit: 5 } } }));
    const u = new URL(seen[0]!.url);
    expect(u.pathname).toBe("/api/alerts");
    expect(u.searchParams.get("severity")).toBe("high");
    expect(u.searchParams.get("limit")).toBe("5");
  });

  it("logs out on 401 to an authenticated request", async () => {
    const { api, onUnauthorized } = setup(() => json(401, { detail: "token expired" }));
    const err = await api.run(api.client.GET("/api/auth/me")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(401);
    expect((err as ApiError).detail).toBe("token expired");
    expect(onUnauthorized).toHaveBeenCalledTimes(1);
  });

  it("does not log out on a failed login (no token sent)", async () => {
    const { api, onUnauthorized } = setup(() => json(401, { detail: "wrong user name or password" }), null);
    const err = await api
      .run(api.client.POST("/api/auth/login", { body: { username: "a", password: "b" } }))
      .catch((e: unknown) => e);
    expect((err as ApiError).status).toBe(401);
    expect(onUnauthorized).not.toHaveBeenCalled();
  });

  it("turns a 422 into field errors", async () => {
    const { api } = setup(() =>
      json(422, {
        detail: [
          { loc: ["query", "limit"], msg: "100000 is out of range", type: "value_error" },
          { loc: ["body", "sources", 0, "layer"], msg: "not a layer", type: "value_error" },
        ],
      }),
    );
    const err = (await api.run(api.client.GET("/api/alerts", { params: { query: { limit: 100000 } } })).catch((e: unknown) => e)) as ApiError;
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(422);
    expect(err.fields).toHaveLength(2);
    expect(err.fieldMessage("limit")).toBe("100000 is out of range");
    expect(err.fieldMessage("sources.0.layer")).toBe("not a layer");
    expect(err.message).toContain("limit: 100000 is out of range");
  });

  it("turns a refused connection into a NetworkError", async () => {
    const { api } = setup(() => {
      throw new TypeError("Failed to fetch");
    });
    const err = await api.run(api.client.GET("/api/alerts/stats")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetworkError);
    expect((err as Error).message).toMatch(/cannot reach the server: Failed to fetch/);
  });

  it("handles non-JSON error bodies", async () => {
    const { api } = setup(() => new Response("upstream exploded", { status: 502 }));
    const err = (await api.run(api.client.GET("/api/alerts/stats")).catch((e: unknown) => e)) as ApiError;
    expect(err.status).toBe(502);
    expect(err.detail).toBe("upstream exploded");
  });

  it("exposes response headers (X-Total-Count)", async () => {
    const { api } = setup(() => json(200, [], { "x-total-count": "42" }));
    const { data, response } = await api.runWithResponse(api.client.GET("/api/predictions"));
    expect(data).toEqual([]);
    expect(response.headers.get("x-total-count")).toBe("42");
  });

  it("retries network and server errors, never client errors", () => {
    expect(shouldRetry(0, new NetworkError("x"))).toBe(true);
    expect(shouldRetry(2, new NetworkError("x"))).toBe(false);
    expect(shouldRetry(0, new ApiError(500, "x"))).toBe(true);
    expect(shouldRetry(0, new ApiError(404, "x"))).toBe(false);
    expect(shouldRetry(0, new ApiError(422, "x"))).toBe(false);
    expect(shouldRetry(0, new ApiError(429, "x"))).toBe(true);
  });

  it("words errors for people", () => {
    expect(errorMessage(new ApiError(403, "needs the analyst role"))).toMatch(/not allowed for your role/);
    expect(errorMessage(toApiError(404, { detail: "alert x not found" }))).toBe("alert x not found");
    expect(errorMessage(toApiError(500, null))).toBe("HTTP 500");
  });
});
