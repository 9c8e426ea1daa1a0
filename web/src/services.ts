// The app's singletons: session, API client, live socket, live store, query cache.
import { QueryClient } from "@tanstack/react-query";
import { createApi, shouldRetry } from "./api/client";
import { SessionStore } from "./auth/session";
import { LiveSocket, wsUrl } from "./live/socket";
import { LiveStore } from "./live/store";

function storage(): Storage | null {
  try {
    return typeof sessionStorage === "undefined" ? null : sessionStorage;
  } catch {
    return null;
  }
}

export const session = new SessionStore(storage());

export const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      staleTime: 10_000,
      gcTime: 120_000,
      retry: shouldRetry,
      retryDelay: (n) => Math.min(1000 * 2 ** n, 10_000),
      refetchOnWindowFocus: false,
    },
  },
});

export const api = createApi({
  // Absolute, so the same client works where Request needs one (tests under Node).
  baseUrl: typeof window === "undefined" ? "" : window.location.origin,
  getToken: () => session.token(),
  onUnauthorized: () => session.logout("expired"),
});

export const live = new LiveStore();

export const socket = new LiveSocket({
  url: () => {
    const t = session.token();
    return t ? wsUrl(window.location, t) : null;
  },
  // A socket that never opens may hold an expired token: /api/auth/me answers 401 then,
  // and the client's 401 handler logs out (which stops the socket).
  onRepeatedFailure: () => {
    api.run(api.client.GET("/api/auth/me")).catch(() => undefined);
  },
  // Messages sent while disconnected are lost: refetch what the pages show.
  onReconnect: () => {
    void queryClient.invalidateQueries();
  },
});

socket.on("*", (data, msg) => {
  live.handle(msg.type, data);
});

let wasLoggedIn = false;
function follow() {
  const loggedIn = !!session.getSnapshot().session;
  if (loggedIn && !wasLoggedIn) {
    socket.subscribe("dashboard");
    socket.subscribe("alerts");
    socket.start();
  } else if (!loggedIn && wasLoggedIn) {
    socket.stop();
    live.reset();
    queryClient.clear();
  }
  wasLoggedIn = loggedIn;
}
session.subscribe(follow);
follow();
