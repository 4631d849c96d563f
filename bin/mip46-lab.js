#!/usr/bin/env node
// Runs the TypeScript sources through tsx; no build step.
import { runSource } from "./load.js";
await runSource("deploy/lab/cli.ts");
