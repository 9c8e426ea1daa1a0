import { useEffect, useId, useRef, useState, type FormEvent } from "react";
import { Navigate, useSearchParams } from "react-router";
import { api, session } from "../services";
import { ApiError, NetworkError } from "../api/client";
import { useSession } from "../lib/hooks";

export default function Login() {
  const { session: s, reason } = useSession();
  const [sp] = useSearchParams();
  const next = sp.get("next");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | Error | null>(null);
  const userRef = useRef<HTMLInputElement | null>(null);
  const ids = { u: useId(), p: useId(), ue: useId(), pe: useId(), e: useId() };
  useEffect(() => userRef.current?.focus(), []);

  if (s) return <Navigate to={next && next.startsWith("/") && !next.startsWith("//") ? next : "/"} replace />;

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const t = await api.run(api.client.POST("/api/auth/login", { body: { username, password } }));
      session.login(t);
    } catch (err) {
      setError(err instanceof Error ? err : new Error(String(err)));
    } finally {
      setBusy(false);
    }
  }

  const apiErr = error instanceof ApiError ? error : null;
  const userErr = apiErr?.fieldMessage("username");
  const passErr = apiErr?.fieldMessage("password");
  let message: string | null = null;
  if (apiErr?.status === 401) message = "Wrong user name or password.";
  else if (apiErr?.status === 429) message = "Too many attempts: wait a moment and try again.";
  else if (apiErr && !userErr && !passErr) message = apiErr.message;
  else if (error instanceof NetworkError) message = `The server cannot be reached (${error.message}).`;
  else if (error && !apiErr) message = error.message;

  return (
    <main className="login" id="main">
      <form className="login-box" onSubmit={submit} aria-describedby={message ? ids.e : undefined} noValidate>
        <h1>
          <span className="brand-mark" aria-hidden="true">
            ◆
          </span>{" "}
          FedICS
        </h1>
        <p className="muted">Security operations: sign in.</p>
        {reason === "expired" && !error && (
          <p className="notice" role="status">
            Your session ended (expired or revoked): sign in again.
          </p>
        )}
        <div className="field">
          <label htmlFor={ids.u}>User name</label>
          <input
            ref={userRef}
            id={ids.u}
            name="username"
            autoComplete="username"
            value={username}
            onChange={(e) => setUsername(e.target.value)}
            aria-invalid={!!userErr}
            aria-describedby={userErr ? ids.ue : undefined}
            required
          />
          {userErr && (
            <span id={ids.ue} className="error-text">
              {userErr}
            </span>
          )}
        </div>
        <div className="field">
          <label htmlFor={ids.p}>Password</label>
          <input
            id={ids.p}
            name="password"
            type="password"
            autoComplete="current-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            aria-invalid={!!passErr}
            aria-describedby={passErr ? ids.pe : undefined}
            required
          />
          {passErr && (
            <span id={ids.pe} className="error-text">
              {passErr}
            </span>
          )}
        </div>
        {message && (
          <p id={ids.e} className="error-text" role="alert">
            {message}
          </p>
        )}
        <button type="submit" className="btn btn-primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
