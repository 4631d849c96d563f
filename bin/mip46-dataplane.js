#!/usr/bin/env node
// Runs the bundled worker (scripts/build.sh, run by scripts/setup.sh and before the tests).
import { runBundle } from "./load.js";
await runBundle("mip46-dataplane");
