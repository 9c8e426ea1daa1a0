import { lazy, type ReactNode } from "react";
import { BrowserRouter, Link, Navigate, Route, Routes, useLocation } from "react-router";
import { QueryClientProvider } from "@tanstack/react-query";
import { queryClient } from "./services";
import { useSession } from "./lib/hooks";
import { Layout } from "./components/Layout";
import Overview from "./pages/Overview";
import Login from "./pages/Login";

// Pages other than the overview load on first visit (the attack graph brings cytoscape).
const Alerts = lazy(() => import("./pages/Alerts"));
const AlertDetail = lazy(() => import("./pages/AlertDetail"));
const AttackGraph = lazy(() => import("./pages/AttackGraph"));
const Federation = lazy(() => import("./pages/Federation"));
const Predictions = lazy(() => import("./pages/Predictions"));

function RequireAuth({ children }: { children: ReactNode }) {
  const { session } = useSession();
  const loc = useLocation();
  if (!session) {
    const next = loc.pathname + loc.search;
    return <Navigate to={next === "/" ? "/login" : `/login?next=${encodeURIComponent(next)}`} replace />;
  }
  return children;
}

function NotFound() {
  return (
    <div className="page">
      <h1>Not found</h1>
      <p>
        There is no page here. <Link to="/">Go to the overview</Link>.
      </p>
    </div>
  );
}

export function App() {
  return (
    <QueryClientProvider client={queryClient}>
      <BrowserRouter>
        <Routes>
          <Route path="/login" element={<Login />} />
          <Route
            element={
              <RequireAuth>
                <Layout />
              </RequireAuth>
            }
          >
            <Route index element={<Overview />} />
            <Route path="alerts" element={<Alerts />} />
            <Route path="alerts/:id" element={<AlertDetail />} />
            <Route path="attack-graph" element={<AttackGraph />} />
            <Route path="federation" element={<Federation />} />
            <Route path="predictions" element={<Predictions />} />
            <Route path="*" element={<NotFound />} />
          </Route>
        </Routes>
      </BrowserRouter>
    </QueryClientProvider>
  );
}
