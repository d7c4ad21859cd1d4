// Loads index.ts the way the Pulumi CLI's Node.js language host does (@pulumi/pulumi cmd/run/run.js):
// for a TypeScript project without "type": "module" it registers ts-node — the one in node_modules,
// else the copy @pulumi/pulumi vendors (7.0.1) — with the project's TypeScript, the tsconfig's
// compiler options over { target ES2020, module/moduleResolution nodenext }, and type checking unless
// the tsconfig says noCheck; then it requires the program with plain CommonJS `require`. Here the
// engine is Pulumi's mock monitor. Prints one JSON line: the registered resources and the exports.
/* global require, process, __dirname */
/* eslint-disable @typescript-eslint/no-require-imports -- the CLI loads the program with CommonJS require; so does this */
"use strict";
const path = require("node:path");
const root = path.resolve(__dirname, "..", "..");
const pulumi = require(path.join(root, "node_modules/@pulumi/pulumi"));
const tsutils = require(path.join(root, "node_modules/@pulumi/pulumi/tsutils.js"));

const tsconfig = path.join(root, "tsconfig.json");
const { tsnodeRequire, typescriptRequire } = tsutils.typeScriptRequireStrings();
const compilerOptions = tsutils.loadTypeScriptCompilerOptions(tsconfig);
require(tsnodeRequire).register({
  compiler: typescriptRequire,
  transpileOnly: compilerOptions.noCheck,
  project: tsconfig,
  skipProject: false,
  compilerOptions: { target: "ES2020", module: "nodenext", moduleResolution: "nodenext", sourceMap: "true", ...compilerOptions },
});

const config = JSON.parse(process.env.KNOCK_TEST_CONFIG || "{}");
pulumi.runtime.setAllConfig(config);
const resources = [];
pulumi.runtime
  .setMocks(
    {
      newResource(args) {
        resources.push(`${args.type} ${args.name}`);
        const state = {
          ...args.inputs,
          arn: `arn:aws:mock:us-east-2:123456789012:${args.name}`,
          hex: "00".repeat(32),
          repositoryUrl: "123456789012.dkr.ecr.us-east-2.amazonaws.com/knock-lambda-dev",
          functionUrl: "https://abc.lambda-url.us-east-2.on.aws/",
          stdout: `build id: knock-lambda-build-dev:1\nsha256:${"ab".repeat(32)}`,
        };
        return { id: `${args.name}-id`, state };
      },
      call(args) {
        if (args.token === "aws:index/getCallerIdentity:getCallerIdentity") return { accountId: "123456789012" };
        if (args.token === "aws:index/getPartition:getPartition") return { partition: "aws" };
        throw new Error(`unexpected call ${args.token}`);
      },
    },
    "knock-lambda",
    "dev",
    false,
  )
  .then(() => {
    process.chdir(root);
    const program = require(path.join(root, "index.ts"));
    // The program is done when the event loop has nothing left to do — its outputs resolved, the
    // build-context archive behind source-code written — which is when the CLI's language host
    // (cmd/run/index.js) ends the deployment too: on `beforeExit`, however long a busy machine takes.
    process.once("beforeExit", () => {
      process.stdout.write(JSON.stringify({ tsNode: path.basename(tsnodeRequire), resources, exports: Object.keys(program) }) + "\n");
    });
  })
  .catch((err) => {
    process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
    process.exitCode = 1;
  });
