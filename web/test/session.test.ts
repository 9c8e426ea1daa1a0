import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { SessionStore, hasRole } from "../src/auth/session";

class MemStorage {
  m = new Map<string, string>();
  getItem(k: string) {
    return this.m.get(k) ?? null;
  }
  setItem(k: string, v: string) {
    this.m.set(k, v);
  }
  removeItem(k: string) {
    this.m.delete(k);
  }
}

const token = { access_token: "jwt", username: "ana", role: "analyst", expires_in: 3600 };

describe("session", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("survives a reload through storage and ends at expiry", () => {
    const st = new MemStorage() as unknown as Storage;
    const a = new SessionStore(st);
    a.login(token);
    const b = new SessionStore(st);
    expect(b.getSnapshot().session?.username).toBe("ana");
    expect(b.token()).toBe("jwt");
    vi.advanceTimersByTime(3600 * 1000 + 1);
    expect(b.getSnapshot().session).toBeNull();
    expect(b.getSnapshot().reason).toBe("expired");
  });

  it("ignores a stored session that has expired or is malformed", () => {
    const st = new MemStorage();
    st.setItem("fedics.session", JSON.stringify({ token: "x", username: "u", role: "admin", expiresAt: Date.now() - 1 }));
    expect(new SessionStore(st as unknown as Storage).getSnapshot().session).toBeNull();
    st.setItem("fedics.session", "{not json");
    expect(new SessionStore(st as unknown as Storage).getSnapshot().session).toBeNull();
    st.setItem("fedics.session", JSON.stringify({ token: "x", username: "u", role: "root", expiresAt: Date.now() + 1e6 }));
    expect(new SessionStore(st as unknown as Storage).getSnapshot().session).toBeNull();
  });

  it("logout clears storage and tells why", () => {
    const st = new MemStorage();
    const s = new SessionStore(st as unknown as Storage);
    s.login(token);
    s.logout("expired");
    expect(st.getItem("fedics.session")).toBeNull();
    expect(s.getSnapshot()).toEqual({ session: null, reason: "expired" });
  });

  it("ranks roles", () => {
    expect(hasRole("admin", "analyst")).toBe(true);
    expect(hasRole("analyst", "analyst")).toBe(true);
    expect(hasRole("viewer", "analyst")).toBe(false);
    expect(hasRole(undefined, "viewer")).toBe(false);
  });
});
