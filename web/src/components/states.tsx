import type { ReactNode } from "react";
import type { UseQueryResult } from "@tanstack/react-query";
import { errorMessage } from "../api/client";

export function Loading({ what = "Loading" }: { what?: string }) {
  return (
    <div className="state state-loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" /> {what}…
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return (
    <div className="state state-empty" role="status">
      {children}
    </div>
  );
}

export function ErrorState({ error, retry }: { error: unknown; retry?: () => void }) {
  return (
    <div className="state state-error" role="alert">
      <span>Could not load: {errorMessage(error)}</span>
      {retry && (
        <button type="button" className="btn btn-small" onClick={retry}>
          Retry
        </button>
      )}
    </div>
  );
}

/** Loading / error / empty / data, for one query. */
export function QueryView<T>({
  q,
  what,
  empty,
  isEmpty,
  children,
}: {
  q: UseQueryResult<T>;
  what?: string;
  empty?: ReactNode;
  isEmpty?: (d: T) => boolean;
  children: (d: T) => ReactNode;
}) {
  if (q.isPending) return <Loading what={what} />;
  if (q.isError && q.data === undefined) return <ErrorState error={q.error} retry={() => void q.refetch()} />;
  const d = q.data as T;
  if (empty !== undefined && isEmpty?.(d)) return <Empty>{empty}</Empty>;
  return (
    <>
      {q.isError && <ErrorState error={q.error} retry={() => void q.refetch()} />}
      {children(d)}
    </>
  );
}

export function Panel({
  title,
  children,
  actions,
  className,
  id,
}: {
  title: ReactNode;
  children: ReactNode;
  actions?: ReactNode;
  className?: string;
  id?: string;
}) {
  const headingId = id ? `${id}-title` : undefined;
  return (
    <section className={`panel ${className ?? ""}`} aria-labelledby={headingId} id={id}>
      <header className="panel-head">
        <h2 id={headingId}>{title}</h2>
        {actions && <div className="panel-actions">{actions}</div>}
      </header>
      <div className="panel-body">{children}</div>
    </section>
  );
}
