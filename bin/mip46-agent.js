#!/usr/bin/env node
// Runs the bundled privileged-VM agent (scripts/build.sh): it carries the data-plane worker's hot path.
import { runBundle } from "./load.js";
await runBundle("mip46-agent");
