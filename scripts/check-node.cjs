#!/usr/bin/env node
// Stops `npm test` (pretest) and `npm ci`/`npm install` (preinstall) on a Node.js older than
// package.json's "engines" asks for, with one line saying which Node ran, which is needed and how to
// get it — instead of vitest failing deep inside (`Map.groupBy is not a function` on Node 20) or npm
// printing a screen of EBADENGINE warnings and carrying on (engine-strict is off by default). npm 7
// to 11 run a project's own preinstall after fetching its dependencies, so there `npm ci` stops once
// they are unpacked but before postinstall (npm 12 runs it first: npm/cli#9267).
//
//   node scripts/check-node.cjs     silent, exit 0 when this Node is new enough; else one line, exit 1
//
// Written to run on any Node still found on machines (no dependencies, no syntax newer than Node 10),
// since by definition it runs on the Node that is too old. Reads engines.node from the package.json
// beside scripts/, which must be ">=MAJOR[.MINOR[.PATCH]]": the only form this project uses.
/* global require, process, __dirname */
/* eslint-disable @typescript-eslint/no-require-imports -- runs as plain CommonJS on old Node */
"use strict";
var fs = require("fs");
var path = require("path");

var manifest = path.join(__dirname, "..", "package.json");
var wanted;
try {
  wanted = JSON.parse(fs.readFileSync(manifest, "utf8")).engines.node;
} catch {
  wanted = undefined;
}
var match = /^>=\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(String(wanted).trim());
if (!match) {
  process.stderr.write("check-node: cannot read the Node.js version needed from " + manifest + ' (engines.node should look like ">=22.12", found ' + JSON.stringify(wanted) + ")\n");
  process.exit(1);
}

var needed = [Number(match[1]), Number(match[2] || 0), Number(match[3] || 0)];
var found = process.versions.node.split(".").map(Number);
var tooOld = false;
for (var i = 0; i < 3; i++) {
  if (found[i] !== needed[i]) {
    tooOld = found[i] < needed[i];
    break;
  }
}
if (tooOld) {
  process.stderr.write(
    "Node.js " + process.versions.node + " (" + process.execPath + ") is too old: this project needs Node.js " + match.slice(1).filter(Boolean).join(".") +
      " or newer; run `source scripts/use-node.sh` (it provisions Node.js 24 if need be), then this command again.\n",
  );
  process.exit(1);
}
