import { useEffect, useRef, useState, useSyncExternalStore } from "react";
import { useQueryClient, type QueryKey } from "@tanstack/react-query";
import { live, session, socket } from "../services";
import type { ConnectionState, Room } from "../live/socket";
import type { LiveState } from "../live/store";

export function useSession() {
  return useSyncExternalStore(session.subscribe, session.getSnapshot);
}

export function useLive<T>(select: (s: LiveState) => T): T {
  const s = useSyncExternalStore(live.subscribe, live.getSnapshot);
  return select(s);
}

export function useConnection(): ConnectionState {
  return useSyncExternalStore(
    (fn) => socket.onState(fn),
    () => socket.state,
  );
}

/** Joins a WebSocket room while the component is mounted. */
export function useRoom(room: Room) {
  useEffect(() => socket.subscribe(room), [room]);
}

/** Invalidates `keys` when a message of one of `types` arrives, at most once per `ms`. */
export function useLiveInvalidate(types: string[], keys: QueryKey[], ms = 2000) {
  const qc = useQueryClient();
  const ref = useRef({ keys, timer: null as ReturnType<typeof setTimeout> | null });
  ref.current.keys = keys;
  const typesKey = types.join(",");
  useEffect(() => {
    const r = ref.current;
    const fire = () => {
      r.timer = null;
      for (const k of r.keys) void qc.invalidateQueries({ queryKey: k });
    };
    const offs = typesKey.split(",").map((t) =>
      socket.on(t, () => {
        if (!r.timer) r.timer = setTimeout(fire, ms);
      }),
    );
    return () => {
      offs.forEach((off) => off());
      if (r.timer) clearTimeout(r.timer);
      r.timer = null;
    };
  }, [qc, typesKey, ms]);
}

/** The current time, updated every `ms`. */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

/** `value`, updated only after it has stopped changing for `ms`. */
export function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}
