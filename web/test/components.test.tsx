import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { act, cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { MemoryRouter, Route, Routes } from "react-router";
import { QueryClient, QueryClientProvider, useQuery } from "@tanstack/react-query";
import { FakeSocket } from "./fakes";
import { ApiError, NetworkError } from "../src/api/client";

// The app's services open a WebSocket after login: give them the fake.
vi.stubGlobal("WebSocket", FakeSocket);

const { session, socket, live } = await import("../src/services");
const { default: Login } = await import("../src/pages/Login");
const { ConnectionBadge } = await import("../src/components/ConnectionBadge");
const { QueryView } = await import("../src/components/states");

/** An element's text, for matching. */
function text(el: Element): string {
  return el.textContent ?? "";
}

function json(status: number, body: unknown) {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

function renderLogin() {
  return render(
    <MemoryRouter initialEntries={["/login?next=/alerts"]}>
      <Routes>
        <Route path="/login" element={<Login />} />
        <Route path="/alerts" element={<h1>Alerts page</h1>} />
      </Routes>
    </MemoryRouter>,
  );
}

async function submit(user: string, password: string) {
  fireEvent.change(screen.getByLabelText("User name"), { target: { value: user } });
  fireEvent.change(screen.getByLabelText("Password"), { target: { value: password } });
  fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
}

describe("login page", () => {
  beforeEach(() => {
    FakeSocket.all = [];
    session.logout("user");
  });
  afterEach(() => {
    cleanup();
    vi.unstubAllGlobals();
    vi.stubGlobal("WebSocket", FakeSocket);
    session.logout("user");
  });

  it("shows a wrong password as such and stays on the page", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => json(401, { detail: "wrong user name or password" })));
    renderLogin();
    await submit("admin", "nope");
    expect(text(await screen.findByRole("alert"))).toMatch("Wrong user name or password.");
    expect(session.getSnapshot().session).toBeNull();
  });

  it("puts 422 field errors next to their fields", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async () => json(422, { detail: [{ loc: ["body", "username"], msg: "expected 1 to 128 characters", type: "value_error" }] })),
    );
    renderLogin();
    await submit("", "x");
    expect(await screen.findByText("expected 1 to 128 characters")).toBeTruthy();
    expect(screen.getByLabelText("User name").getAttribute("aria-invalid")).toBe("true");
  });

  it("says when the server cannot be reached", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async () => {
        throw new TypeError("Failed to fetch");
      }),
    );
    renderLogin();
    await submit("admin", "pw");
    expect(text(await screen.findByRole("alert"))).toMatch(/cannot be reached/);
  });

  it("logs in, opens the live socket with the token and goes to the page asked for", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async () => json(200, { access_token: "jwt-1", token_type: "bearer", expires_in: 3600, username: "admin", role: "admin" })),
    );
    renderLogin();
    await submit("admin", "pw");
    expect(await screen.findByRole("heading", { name: "Alerts page" })).toBeTruthy();
    expect(session.getSnapshot().session?.role).toBe("admin");
    const ws = FakeSocket.last();
    expect(ws.url).toMatch(/\/ws\?token=jwt-1$/);
    act(() => ws.open());
    expect(ws.sent).toEqual(expect.arrayContaining([{ action: "subscribe", room: "dashboard" }, { action: "subscribe", room: "alerts" }]));
    // Live messages reach the store; logout stops the socket and forgets them.
    act(() => ws.receive({ type: "alert_created", data: { id: "a1", facility_id: "f", severity: "low", last_seen: "2026-01-01T00:00:00Z" } }));
    expect(live.getSnapshot().feed).toHaveLength(1);
    act(() => session.logout("user"));
    expect(ws.closed?.code).toBe(1000);
    expect(live.getSnapshot().feed).toHaveLength(0);
    expect(socket.state.kind).toBe("closed");
  });
});

describe("connection badge", () => {
  afterEach(() => {
    cleanup();
    session.logout("user");
  });

  it("shows the connection state and a retry countdown", async () => {
    vi.useFakeTimers();
    try {
      session.login({ access_token: "t", username: "v", role: "viewer", expires_in: 3600 });
      render(<ConnectionBadge />);
      expect(text(screen.getByRole("status"))).toMatch("Connecting");
      act(() => FakeSocket.last().open());
      expect(text(screen.getByRole("status"))).toMatch("Live");
      act(() => FakeSocket.last().serverClose(1006));
      expect(text(screen.getByRole("status"))).toMatch(/Offline — retry in \d+ s/);
      expect(screen.getByRole("button", { name: "Retry now" })).toBeTruthy();
      fireEvent.click(screen.getByRole("button", { name: "Retry now" }));
      expect(text(screen.getByRole("status"))).toMatch(/Reconnecting|Connecting/);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("QueryView", () => {
  afterEach(cleanup);

  function Harness({ fn }: { fn: () => Promise<number[]> }) {
    const q = useQuery({ queryKey: ["x", fn], queryFn: fn, retry: false });
    return (
      <QueryView q={q} what="Loading numbers" empty="Nothing here." isEmpty={(d) => d.length === 0}>
        {(d) => <p>numbers: {d.join(",")}</p>}
      </QueryView>
    );
  }
  const wrap = (fn: () => Promise<number[]>) =>
    render(
      <QueryClientProvider client={new QueryClient()}>
        <Harness fn={fn} />
      </QueryClientProvider>,
    );

  it("shows loading, then the data", async () => {
    wrap(async () => [1, 2]);
    expect(text(screen.getByRole("status"))).toMatch("Loading numbers");
    expect(await screen.findByText("numbers: 1,2")).toBeTruthy();
  });

  it("shows the empty state", async () => {
    wrap(async () => []);
    expect(await screen.findByText("Nothing here.")).toBeTruthy();
  });

  it("shows API and network errors with a retry button", async () => {
    wrap(async () => {
      throw new ApiError(403, "needs the analyst role");
    });
    expect(text(await screen.findByRole("alert"))).toMatch(/not allowed for your role/);
    cleanup();
    let calls = 0;
    wrap(async () => {
      calls++;
      if (calls === 1) throw new NetworkError("cannot reach the server: down");
      return [7];
    });
    expect(text(await screen.findByRole("alert"))).toMatch("cannot reach the server: down");
    fireEvent.click(screen.getByRole("button", { name: "Retry" }));
    await waitFor(() => expect(screen.getByText("numbers: 7")).toBeTruthy());
  });
});
