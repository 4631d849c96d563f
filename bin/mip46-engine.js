#!/usr/bin/env node
// Runs the TypeScript sources through tsx; no build step.
import { runSource } from "./load.js";
await runSource("services/engine/main.ts");
