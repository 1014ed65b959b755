#!/usr/bin/env node
// The package's command. The sources are TypeScript; tsx compiles them on load (cached), so
// there is no build step between `npm install` and `npx tera-cdc`.
import { register } from "tsx/esm/api";

register();
await import("../src/cli/main.ts");
