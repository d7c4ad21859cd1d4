#!/usr/bin/env node
// The `knock` command (package.json "bin"). The client is TypeScript run through tsx, the project's
// own TypeScript loader, so `npx knock` works right after `npm ci` with no build step.
/* global require, process */
/* eslint-disable @typescript-eslint/no-require-imports -- a CommonJS launcher by design */
"use strict";
require("tsx/cjs");
require("../main.ts").main(process.argv.slice(2));
