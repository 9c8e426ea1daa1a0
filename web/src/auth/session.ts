// The logged-in user: token, name, role and expiry, kept in sessionStorage (one tab's
// login survives a reload, not the browser).
import type { Role } from "../api/types";

export interface Session {
  token: string;
  username: string;
  role: Role;
  /** ms since the epoch. */
  expiresAt: number;
}

export type LogoutReason = "user" | "expired" | null;

export interface SessionSnapshot {
  session: Session | null;
  /** Why the last session ended (shown on the login page). */
  reason: LogoutReason;
}

const KEY = "fedics.session";
const RANK: Record<Role, number> = { viewer: 0, analyst: 1, admin: 2 };

/** Whether `role` has at least the rights of `needed`. */
export function hasRole(role: Role | undefined, needed: Role): boolean {
  return role !== undefined && RANK[role] >= RANK[needed];
}

function isRole(v: unknown): v is Role {
  return v === "viewer" || v === "analyst" || v === "admin";
}

export class SessionStore {
  private snap: SessionSnapshot = { session: null, reason: null };
  private listeners = new Set<() => void>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly storage: Storage | null;
  private readonly now: () => number;

  constructor(storage: Storage | null, now: () => number = Date.now) {
    this.storage = storage;
    this.now = now;
    const saved = this.load();
    if (saved) this.apply({ session: saved, reason: null });
  }

  getSnapshot = (): SessionSnapshot => this.snap;

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  token(): string | null {
    return this.snap.session?.token ?? null;
  }

  /** Starts a session from `POST /api/auth/login`'s answer. */
  login(t: { access_token: string; username: string; role: string; expires_in: number }) {
    const role: Role = isRole(t.role) ? t.role : "viewer";
    const session: Session = {
      token: t.access_token,
      username: t.username,
      role,
      expiresAt: this.now() + Math.max(0, t.expires_in) * 1000,
    };
    try {
      this.storage?.setItem(KEY, JSON.stringify(session));
    } catch {
      /* storage full or disabled: the session lasts for this page only */
    }
    this.apply({ session, reason: null });
  }

  logout(reason: Exclude<LogoutReason, null>) {
    if (!this.snap.session && this.snap.reason === reason) return;
    try {
      this.storage?.removeItem(KEY);
    } catch {
      /* ignore */
    }
    // An expiry only matters while someone is logged in.
    this.apply({ session: null, reason: this.snap.session ? reason : this.snap.reason });
  }

  private apply(s: SessionSnapshot) {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.snap = s;
    if (s.session) {
      const left = s.session.expiresAt - this.now();
      // setTimeout's delay is a 32-bit int: longer sessions are checked again later.
      this.timer = setTimeout(() => {
        if (this.snap.session && this.snap.session.expiresAt <= this.now()) this.logout("expired");
        else if (this.snap.session) this.apply(this.snap);
      }, Math.min(Math.max(left, 0), 2 ** 31 - 1));
    }
    for (const fn of this.listeners) fn();
  }

  private load(): Session | null {
    try {
      const raw = this.storage?.getItem(KEY);
      if (!raw) return null;
      const v = JSON.parse(raw) as Partial<Session>;
      if (typeof v.token !== "string" || typeof v.username !== "string" || !isRole(v.role)) return null;
      if (typeof v.expiresAt !== "number" || v.expiresAt <= this.now()) return null;
      return v as Session;
    } catch {
      return null;
    }
  }
}
