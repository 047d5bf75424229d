#!/usr/bin/env node
// Runs the TypeScript sources in a checkout (Node 24 strips types), the built dist/ in the image.
import { existsSync } from "node:fs";

const source = new URL("../src/main.ts", import.meta.url);
await import(existsSync(source) ? source.href : new URL("../dist/main.js", import.meta.url).href);
