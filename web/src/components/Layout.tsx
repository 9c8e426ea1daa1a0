import { Suspense, useEffect, useRef } from "react";
import { NavLink, Outlet, useLocation } from "react-router";
import { session } from "../services";
import { useSession } from "../lib/hooks";
import { ConnectionBadge } from "./ConnectionBadge";
import { Loading } from "./states";

const NAV = [
  ["/", "Overview"],
  ["/alerts", "Alerts"],
  ["/attack-graph", "Attack graph"],
  ["/federation", "Federation"],
  ["/predictions", "Predictions"],
] as const;

export function Layout() {
  const { session: s } = useSession();
  const { pathname } = useLocation();
  const main = useRef<HTMLElement | null>(null);
  const first = useRef(true);
  // Moving to another page puts the keyboard focus at the start of its content.
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    main.current?.focus({ preventScroll: false });
  }, [pathname]);
  return (
    <>
      <a href="#main" className="skip-link">
        Skip to content
      </a>
      <header className="topbar">
        <div className="brand">
          <span className="brand-mark" aria-hidden="true">
            ◆
          </span>{" "}
          FedICS
        </div>
        <nav aria-label="Main">
          <ul className="nav">
            {NAV.map(([to, label]) => (
              <li key={to}>
                <NavLink to={to} end={to === "/"}>
                  {label}
                </NavLink>
              </li>
            ))}
          </ul>
        </nav>
        <div className="topbar-right">
          <ConnectionBadge />
          {s && (
            <div className="user" data-role={s.role}>
              <span>
                {s.username} <span className="badge role">{s.role}</span>
              </span>
              <button type="button" className="btn btn-small" onClick={() => session.logout("user")}>
                Log out
              </button>
            </div>
          )}
        </div>
      </header>
      <main id="main" tabIndex={-1} ref={main}>
        <Suspense fallback={<Loading what="Loading the page" />}>
          <Outlet />
        </Suspense>
      </main>
    </>
  );
}
