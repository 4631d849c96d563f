#!/usr/bin/env node
// Runs the bundle (dist/mip46-engine.mjs, built by scripts/build.sh).
import { runBundle } from "./load.js";
await runBundle("mip46-engine");
