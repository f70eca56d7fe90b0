import { defineConfig } from "vitest/config";

// The build goes to ../dist, which analyticsd embeds (ui/ui.go). Assets get
// content-hashed names and are served with a one-year cache.
export default defineConfig({
  build: {
    outDir: "../dist",
    emptyOutDir: true,
    assetsDir: "assets",
    target: "es2020",
    reportCompressedSize: true,
  },
  server: { proxy: { "/api": "http://localhost:3000" } },
  test: { include: ["src/**/*.test.ts"] },
});
