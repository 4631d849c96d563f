#!/usr/bin/env node
// Runs the bundled home agent (scripts/build.sh): it carries the data-plane worker's hot path.
import { runBundle } from "./load.js";
await runBundle("mip46-home-agent");
