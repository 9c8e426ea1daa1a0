/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// During development the API runs in a `fedics demo` (FEDICS_URL, default port 8011);
// the dev server and `vite preview` forward the API paths to it.
const target = process.env.FEDICS_URL ?? "http://127.0.0.1:8011";
const proxy = Object.fromEntries(
  ["/api", "/health", "/ready", "/metrics", "/openapi.json", "/docs"].map((p) => [
    p,
    { target, changeOrigin: false },
  ]),
);
const withWs = { ...proxy, "/ws": { target: target.replace(/^http/, "ws"), ws: true } };

export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: "dist",
    assetsDir: "assets",
    sourcemap: false,
    // The binary embeds dist/: keep it lean, no inline source maps, hashed assets.
    chunkSizeWarningLimit: 700,
    reportCompressedSize: false,
  },
  server: { proxy: withWs, strictPort: true, port: 5173, host: "127.0.0.1" },
  preview: { proxy: withWs, strictPort: true, port: 4173, host: "127.0.0.1" },
  test: {
    environment: "jsdom",
    include: ["test/**/*.test.{ts,tsx}"],
    restoreMocks: true,
  },
});
