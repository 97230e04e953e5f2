import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The built files (dist/) are embedded in the catalog binary by the query
// crate's build script; `npm run dev` serves the UI with hot reload and
// sends API calls to a running `catalog dev` (CATALOG_URL, default :7007).
const api = process.env.CATALOG_URL ?? "http://127.0.0.1:7007";

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 1024,
  },
  server: {
    proxy: { "/api": api, "/readyz": api },
  },
});
