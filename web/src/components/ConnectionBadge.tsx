import { useConnection, useNow } from "../lib/hooks";
import { socket } from "../services";

/** The live connection's state, always visible in the header. */
export function ConnectionBadge() {
  const s = useConnection();
  const now = useNow(1000);
  let text: string;
  let cls: string;
  let title: string | undefined;
  switch (s.kind) {
    case "open":
      text = "Live";
      cls = "ok";
      title = "Receiving live updates";
      break;
    case "connecting":
      text = s.attempt > 1 ? `Reconnecting (attempt ${s.attempt})` : "Connecting";
      cls = "warn";
      break;
    case "waiting": {
      const secs = Math.max(0, Math.ceil((s.retryAt - now) / 1000));
      text = `Offline — retry in ${secs} s`;
      cls = "bad";
      title = s.reason;
      break;
    }
    default:
      text = "Not connected";
      cls = "bad";
  }
  return (
    <div className={`conn conn-${cls}`} data-connection={s.kind} title={title}>
      <span className="conn-dot" aria-hidden="true" />
      <span role="status" aria-live="polite">
        {text}
      </span>
      {s.kind === "waiting" && (
        <button type="button" className="btn btn-small" onClick={() => socket.retryNow()}>
          Retry now
        </button>
      )}
    </div>
  );
}
