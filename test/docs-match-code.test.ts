// The reference says what exists, and only that: every `knock` command and option, config key, stack
// output, route and error type is documented where this test looks, and everything documented there
// (or named in a `knock …` or `pulumi config|stack output …` line anywhere in the docs) exists. Each
// fact is compared with its source of truth in the code, read the way the program itself reads it:
// the commander program `knock` runs, config.ts's key table, index.ts's exports, the handler's
// router, and the error classes' status codes.
//
// Where each fact is documented once:
//   knock commands, options, defaults, KNOCK_* variables   docs/knock.md
//   config keys (defaults, ranges)                         docs/configuration.md, the key table
//   stack outputs                                          docs/configuration.md, "Outputs"
//   routes                                                 docs/api.md, "Routes"
//   error types and their status                           docs/api.md, the "Errors" and "Library loans" tables
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Command, Option } from "commander";
import * as ts from "typescript";
import { describe, expect, it } from "vitest";
import { program } from "../client/main";
import { CONFIG_KEYS, type ConfigKeySpec } from "../config";
import { ServiceError } from "../lambda/src/errors";
import { ROUTES as ROUTE_TABLE, routeList } from "../lambda/src/public";
import { routeOf } from "../lambda/src/routes";
import { allCode, codeSpans, section, sections, tables, withoutFences, type Table } from "./support/markdown";

const ROOT = resolve(__dirname, "..");
const read = (file: string): string => readFileSync(join(ROOT, file), "utf8");
const DOCS = ["README.md", ...readdirSync(join(ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];
const KNOCK_DOC = "docs/knock.md";
const CONFIG_DOC = "docs/configuration.md";
const API_DOC = "docs/api.md";

/** The text of a table cell's first code span, or undefined when the cell does not start with one. */
function leadingCode(cell: string): string | undefined {
  return /^`([^`]+)`/.exec(cell)?.[1];
}

/** The single table of a section; fails naming the section when it has none or several. */
function onlyTable(body: string, where: string): Table {
  const found = tables(body);
  expect(found.length, `${where} has exactly one table`).toBe(1);
  return found[0];
}

// ---- knock ------------------------------------------------------------------------------------

const knock = program();
const commands = new Map(knock.commands.map((c) => [c.name(), c]));
const HELP = "-h, --help";

/** The options a command defines itself (commander adds the help option to every command). */
function ownOptions(cmd: Command): readonly Option[] {
  return cmd.options;
}

/** Every spelling of a command's options (`-y`, `--yes`), with the program's and the help option's. */
function spellings(cmd: Command): Set<string> {
  const all = [...ownOptions(cmd), ...ownOptions(knock)].flatMap((o) => [o.long, o.short]);
  return new Set([...all, "-h", "--help"].filter((s): s is string => s !== undefined));
}

interface DocumentedOption {
  readonly flags: string;
  readonly defaultCell: string;
}

function optionRows(table: Table): DocumentedOption[] {
  expect(table.header[0]).toBe("option");
  expect(table.header[1]).toBe("default");
  return table.rows.map((row) => ({ flags: leadingCode(row[0]) ?? row[0], defaultCell: row[1] }));
}

const knockDoc = read(KNOCK_DOC);
const commandSections = sections(knockDoc).filter((s) => s.level === 2 && /^`knock /.test(s.title));
const connection = section(knockDoc, "Connection options", KNOCK_DOC);
/** The commands the "Connection options" section says take those options. */
const connectionCommands = [...connection.body.split("\n|")[0].matchAll(/`knock ([a-z-]+)`/g)].map((m) => m[1]);
const connectionOptions = optionRows(onlyTable(connection.body, `${KNOCK_DOC} "Connection options"`));
const globalOptions = optionRows(onlyTable(section(knockDoc, "Every command", KNOCK_DOC).body, `${KNOCK_DOC} "Every command"`));

/** The options docs/knock.md gives a command: its own table, and the connection options if it takes them. */
function documentedOptions(name: string): DocumentedOption[] {
  const own = commandSections.find((s) => s.title.startsWith(`\`knock ${name} `));
  const table = tables(own?.body ?? "");
  return [...(table.length ? optionRows(table[0]) : []), ...(connectionCommands.includes(name) ? connectionOptions : [])];
}

/** What a documented default cell must say for this option. */
function checkDefault(where: string, option: Option, cell: string): void {
  const literal = leadingCode(cell);
  if (option.defaultValue !== undefined && !option.negate) {
    expect(literal, `${where}: the default is ${JSON.stringify(option.defaultValue)}`).toBe(String(option.defaultValue));
  } else if (literal !== undefined) {
    // No default in the code: the cell may name where the value comes from (an environment
    // variable), never a value of its own.
    expect(literal, `${where}: the code has no default, so the cell can only name an environment variable`).toMatch(/^[A-Z][A-Z0-9_]*$/);
  }
}

describe("docs/knock.md and the knock program", () => {
  it("documents every command, with its usage line, and no command that does not exist", () => {
    const documented = commandSections.map((s) => /^`knock (\S+) (.*)`$/.exec(s.title)).map((m) => `${m?.[1]} ${m?.[2]}`);
    const actual = [...commands.values()].map((c) => `${c.name()} ${c.usage()}`);
    expect(documented.sort()).toEqual(actual.sort());
  });

  it("documents every option of every command with its default, and no option that does not exist", () => {
    for (const [name, cmd] of commands) {
      const documented = documentedOptions(name);
      expect(documented.map((d) => d.flags).sort(), `knock ${name}'s options`).toEqual(ownOptions(cmd).map((o) => o.flags).sort());
      for (const option of ownOptions(cmd)) {
        checkDefault(`knock ${name} ${option.flags}`, option, documented.find((d) => d.flags === option.flags)!.defaultCell);
      }
    }
  });

  it("documents each option once: the connection options only in their own table, and only for commands that take all of them", () => {
    for (const name of connectionCommands) expect(commands.has(name), `"Connection options" names knock ${name}`).toBe(true);
    for (const s of commandSections) {
      const name = /^`knock (\S+)/.exec(s.title)![1];
      const own = tables(s.body).flatMap((t) => optionRows(t).map((o) => o.flags));
      // `knock open` has a --url and a --token of its own meaning, documented in its own table.
      if (connectionCommands.includes(name)) {
        for (const flags of own) expect(connectionOptions.map((o) => o.flags), `knock ${name} repeats ${flags}`).not.toContain(flags);
      }
      expect(s.body.includes("(#connection-options)"), `knock ${name}'s section links the connection options iff it takes them`).toBe(connectionCommands.includes(name));
    }
  });

  it("documents the program's own options and the help option every command has", () => {
    expect(globalOptions.map((o) => o.flags).sort()).toEqual([...ownOptions(knock).map((o) => o.flags), HELP].sort());
    for (const cmd of [knock, ...commands.values()]) {
      expect(cmd.createHelp().visibleOptions(cmd).map((o) => o.flags), `knock ${cmd.name()} has ${HELP}`).toContain(HELP);
    }
  });

  it("documents every KNOCK_* environment variable the client reads, and no other", () => {
    const sources = (dir: string): string[] =>
      readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [read(join(dir, e.name))] : [],
      );
    const used = new Set(sources("client").flatMap((text) => [...text.matchAll(/\bKNOCK_[A-Z][A-Z0-9_]*/g)].map((m) => m[0])));
    const env = onlyTable(section(knockDoc, "Environment", KNOCK_DOC).body, `${KNOCK_DOC} "Environment"`);
    const documented = env.rows.flatMap((r) => codeSpans(r[0])).filter((v) => v.startsWith("KNOCK_"));
    expect(documented.sort()).toEqual([...used].sort());
  });
});

/**
 * Every `knock <command> …` written in the docs' code (blocks and spans): the command and the
 * options up to the end of that shell command (`;`, `&&`, `|`, `#`, `)`).
 */
function knockInvocations(markdown: string): { command: string; options: string[]; text: string }[] {
  return allCode(markdown).flatMap((code) =>
    [...code.matchAll(/(?:^|[\s(`"'$])(?:npx )?knock ([a-z][a-z-]*)([^;&|#)`]*)/g)].map((m) => ({
      command: m[1],
      options: m[2].split(/\s+/).filter((t) => /^--?[A-Za-z]/.test(t)).map((t) => t.replace(/=.*$/, "")),
      text: m[0].trim(),
    })),
  );
}

describe("knock as the README and the docs write it", () => {
  it.each(DOCS)("%s names only commands and options that exist", (file) => {
    for (const call of knockInvocations(read(file))) {
      const cmd = commands.get(call.command);
      expect(cmd, `${file}: \`${call.text}\` — there is no knock ${call.command}`).toBeDefined();
      for (const option of call.options) expect([...spellings(cmd!)], `${file}: \`${call.text}\``).toContain(option);
    }
  });

  // Options the README and docs/knock.md name on their own (`--json`, `--data DIR`); in the other
  // docs such spans are curl's, docker's or bash's.
  it.each(["README.md", KNOCK_DOC])("%s names on their own only options some knock command has", (file) => {
    const OTHER_TOOLS: Record<string, string> = { "--connect-to": "curl's option, which KNOCK_CONNECT_TO is compared with" };
    // A command's subcommands (`knock device import --yes`) count too: their flags are documented
    // under the command's own `###` sections.
    const all = new Set([...commands.values()].flatMap((c) => [c, ...c.commands]).flatMap((c) => [...spellings(c)]));
    for (const span of codeSpans(withoutFences(read(file)))) {
      const flag = /^(--[a-z][a-z-]*)(?:[ =]|$)/.exec(span)?.[1];
      if (flag === undefined || flag in OTHER_TOOLS) continue;
      expect([...all], `${file}: \`${span}\``).toContain(flag);
    }
  });
});

// ---- dependencies -------------------------------------------------------------------------------

describe("docs/development.md's dependency table", () => {
  it("names every dependency of package.json and lambda/package.json (\"handler:\"), and no other", () => {
    const packages = (file: string): string[] => {
      const json = JSON.parse(read(file)) as { dependencies?: Record<string, string>; devDependencies?: Record<string, string> };
      return [...Object.keys(json.dependencies ?? {}), ...Object.keys(json.devDependencies ?? {})].sort();
    };
    const table = onlyTable(section(read("docs/development.md"), "Dependencies and why", "docs/development.md").body, "docs/development.md \"Dependencies and why\"");
    const root: string[] = [];
    const handler: string[] = [];
    for (const [cell] of table.rows) {
      const [own, ...lambda] = cell.split("handler:");
      root.push(...codeSpans(own));
      handler.push(...codeSpans(lambda.join("")));
    }
    expect([...new Set(root)].sort(), "the project's packages").toEqual(packages("package.json"));
    expect([...new Set(handler)].sort(), "the handler's packages").toEqual(packages("lambda/package.json"));
  });
});

// ---- configuration and outputs ------------------------------------------------------------------

const configDoc = read(CONFIG_DOC);
/** The key table: the one whose first header is "key". */
const keyTable = tables(configDoc).find((t) => t.header[0] === "key")!;
/** The provider keys config.ts reads (`aws:region`, `aws:profile`), as written in its source. */
const providerKeys = [...new Set([...read("config.ts").matchAll(/"(aws:[a-z][A-Za-z]*)"/g)].map((m) => m[1]))];

/** What the "allowed" cell must mention for a key: its range, or each of its values. */
function allowedMentions(spec: ConfigKeySpec): string[] {
  if (spec.values) return spec.values.map(String);
  return spec.type === "integer" ? [`${spec.min}–${spec.max}`] : [];
}

describe("docs/configuration.md and config.ts", () => {
  it("lists every key the program reads, and no other", () => {
    expect(keyTable, `${CONFIG_DOC} has a table headed "key"`).toBeDefined();
    expect(keyTable.rows.map((r) => leadingCode(r[0])).sort()).toEqual([...Object.keys(CONFIG_KEYS), ...providerKeys].sort());
  });

  it("gives each project key its default and what it allows", () => {
    for (const [key, spec] of Object.entries(CONFIG_KEYS) as [string, ConfigKeySpec][]) {
      const [, defaultCell, allowedCell] = keyTable.rows.find((r) => leadingCode(r[0]) === key)!;
      if (spec.default === "") expect(defaultCell, `${key}'s default`).toMatch(/^empty\b/);
      else expect(leadingCode(defaultCell), `${key}'s default`).toBe(String(spec.default));
      for (const mention of allowedMentions(spec)) {
        // The compute types are written as `BUILD_GENERAL1_SMALL`, `_MEDIUM`, …
        const short = mention.replace(/^BUILD_GENERAL1(?=_)/, "");
        expect(allowedCell.includes(mention) || allowedCell.includes(`\`${short}\``), `${key} allows ${mention}`).toBe(true);
      }
    }
  });

  it("names only existing keys in `pulumi config` commands, anywhere in the docs", () => {
    const known = new Set([...Object.keys(CONFIG_KEYS), ...providerKeys]);
    for (const file of DOCS) {
      for (const code of allCode(read(file))) {
        for (const m of code.matchAll(/pulumi config (?:set|get|rm) ([a-z][a-z0-9_:]*)/g)) expect([...known], `${file}: \`${m[0]}\``).toContain(m[1]);
      }
    }
  });
});

/** index.ts's exported names: the stack's outputs. */
function stackOutputs(): string[] {
  const file = ts.createSourceFile("index.ts", read("index.ts"), ts.ScriptTarget.ES2022, true);
  return file.statements.flatMap((s) =>
    ts.isVariableStatement(s) && s.modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)
      ? s.declarationList.declarations.map((d) => d.name.getText(file))
      : [],
  );
}

describe("the stack's outputs", () => {
  const outputs = stackOutputs();

  it("are the rows of docs/configuration.md's outputs table, no more and no less", () => {
    const table = onlyTable(section(configDoc, "Outputs", CONFIG_DOC).body, `${CONFIG_DOC} "Outputs"`);
    expect(outputs.length).toBeGreaterThan(5);
    expect(table.rows.flatMap((r) => codeSpans(r[0])).sort()).toEqual([...outputs].sort());
  });

  it("include every output the docs and the client read with `pulumi stack output`", () => {
    const reads: { where: string; name: string }[] = [];
    for (const file of DOCS) {
      for (const code of allCode(read(file))) {
        for (const m of code.matchAll(/pulumi stack output ([a-z_]+)/g)) reads.push({ where: `${file}: \`${m[0]}\``, name: m[1] });
      }
    }
    for (const file of readdirSync(join(ROOT, "client/commands")).map((f) => `client/commands/${f}`).concat(["client/lib/connection.ts", "client/lib/service-address.ts"])) {
      for (const m of read(file).matchAll(/(?:readOutput|stackOutput)\("([a-z_]+)"/g)) reads.push({ where: `${file} reads ${m[1]}`, name: m[1] });
    }
    expect(reads.length).toBeGreaterThan(3);
    for (const { where, name } of reads) expect(outputs, where).toContain(name);
  });
});

// ---- routes -------------------------------------------------------------------------------------

const apiDoc = read(API_DOC);
const ROUTE_CELL = /^`(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (\/\S*)`$/;

/** A Function URL event for `method path`, `<id>` filled in with a well-formed loan id. */
function eventFor(method: string, path: string): unknown {
  return {
    version: "2.0",
    rawPath: path.replace("<id>", "0123456789abcdef"),
    headers: { accept: "application/json", "content-type": "application/json" },
    requestContext: { http: { method, path }, domainName: "127.0.0.1" },
    body: JSON.stringify({ acsm_content: "<fulfillmentToken/>" }),
    isBase64Encoded: false,
  };
}

/** The routes the service lists in its 404 answer: `GET /`, `POST /`, … */
const ROUTES = routeList();
/** Every route, the OPDS feed's too (a 404 never lists those: their path holds a secret). */
const ALL_ROUTES = [...new Set(ROUTE_TABLE.map((r) => `${r.method} ${r.path}`))];
const FEED_ROUTES = [...new Set(ROUTE_TABLE.filter((r) => r.auth === "feed").map((r) => `${r.method} ${r.path}`))];

/** What the handler's router does with a request: the route it took, or the error type it answered. */
function routed(method: string, path: string): string {
  try {
    return routeOf(eventFor(method, path), ROUTE_TABLE).route.id;
  } catch (err) {
    if (err instanceof ServiceError) return `${err.errorType} ${err.headers.allow ?? ""}`.trim();
    throw err;
  }
}

describe("the routes", () => {
  it("of docs/api.md's routes table are the ones the service lists in its 404 answer", () => {
    const table = onlyTable(section(apiDoc, "Routes", API_DOC).body, `${API_DOC} "Routes"`);
    expect(table.rows.map((r) => r[0])).toEqual(ROUTES.map((r) => `\`${r}\``));
  });

  it("are the ones the handler's router answers: each documented route is taken, other methods get 405 naming them, other paths 404", () => {
    const byPath = new Map<string, string[]>();
    for (const route of ROUTES) {
      const [method, path] = route.split(" ");
      byPath.set(path, [...(byPath.get(path) ?? []), method]);
      expect(routed(method, path), route).not.toMatch(/^(NotFound|MethodNotAllowed)/);
    }
    for (const [path, methods] of byPath) {
      for (const other of ["GET", "POST", "PUT", "PATCH", "DELETE"].filter((m) => !methods.includes(m))) {
        expect(routed(other, path), `${other} ${path}`).toBe(`MethodNotAllowed ${methods.join(", ")}`);
      }
    }
    for (const path of ["/nothing", "/loans/0123456789abcdef/renew", "/loans/0123456789abcdef/return/again"]) expect(routed("GET", path), path).toBe("NotFound");
  });

  it("named in any of docs/api.md's tables exist", () => {
    const named = tables(apiDoc).flatMap((t) => t.rows.map((r) => r[0]).filter((c) => ROUTE_CELL.test(c)));
    expect(named.length).toBeGreaterThanOrEqual(ALL_ROUTES.length);
    for (const cell of named) expect(ALL_ROUTES.map((r) => `\`${r}\``)).toContain(cell);
  });

  it("of the OPDS feed are the ones docs/api.md's \"The OPDS feed\" table lists", () => {
    expect(FEED_ROUTES.length).toBeGreaterThan(0);
    const table = onlyTable(section(apiDoc, "The OPDS feed", API_DOC).body, `${API_DOC} "The OPDS feed"`);
    expect(table.rows.map((r) => r[0])).toEqual(FEED_ROUTES.map((r) => `\`${r}\``));
  });
});

// ---- error types --------------------------------------------------------------------------------

/** Source files that can answer an error: the handler, and `knock serve`'s own refusals. */
function errorSources(): string[] {
  const list = (dir: string): string[] =>
    readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? list(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
    );
  return [...list("lambda/src"), ...list("client/serve")];
}

/**
 * Every (status, error_type) the code can answer, read from the syntax that makes one:
 * `super(404, "NotFound", …)` in a ServiceError subclass, `new ServiceError(500, "X", …)`,
 * `json(500, { error_type: "X", … })`, and `{ statusCode: 421, errorType: "X" }`. A string given
 * as an error type whose status cannot be read this way fails the test, so no answer goes unseen.
 */
function answeredErrors(): { pairs: Set<string>; unknown: string[] } {
  const pairs = new Set<string>();
  const unknown: string[] = [];
  for (const path of errorSources()) {
    const file = ts.createSourceFile(path, read(path), ts.ScriptTarget.ES2022, true);
    const seen = new Set<ts.Node>();
    const visit = (node: ts.Node): void => {
      if ((ts.isCallExpression(node) || ts.isNewExpression(node)) && node.arguments && node.arguments.length >= 2) {
        const [status, second] = node.arguments;
        const isErrorCall = node.expression.kind === ts.SyntaxKind.SuperKeyword || node.expression.getText(file) === "ServiceError";
        if (isErrorCall && ts.isNumericLiteral(status) && ts.isStringLiteral(second)) {
          pairs.add(`${status.text} ${second.text}`);
          seen.add(second);
        }
        if (ts.isNumericLiteral(status) && ts.isObjectLiteralExpression(second)) {
          const type = propertyString(second, "error_type");
          if (type) {
            pairs.add(`${status.text} ${type.text}`);
            seen.add(type);
          }
        }
      }
      if (ts.isObjectLiteralExpression(node)) {
        const status = property(node, "statusCode");
        const type = propertyString(node, "errorType");
        if (type && status && ts.isNumericLiteral(status)) {
          pairs.add(`${status.text} ${type.text}`);
          seen.add(type);
        }
      }
      if (ts.isPropertyAssignment(node) && ["error_type", "errorType"].includes(node.name.getText(file)) && ts.isStringLiteral(node.initializer) && !seen.has(node.initializer)) {
        // Visited after its parent object (depth first), so a literal still unseen has no status here.
        unknown.push(`${path}: ${node.getText(file)}`);
      }
      ts.forEachChild(node, visit);
    };
    visit(file);
  }
  return { pairs, unknown };
}

function property(object: ts.ObjectLiteralExpression, name: string): ts.Expression | undefined {
  const found = object.properties.find((p): p is ts.PropertyAssignment => ts.isPropertyAssignment(p) && p.name.getText() === name);
  return found?.initializer;
}

function propertyString(object: ts.ObjectLiteralExpression, name: string): ts.StringLiteral | undefined {
  const value = property(object, name);
  return value && ts.isStringLiteral(value) ? value : undefined;
}

/** The (status, error_type) rows of a table headed `status | error_type | …`. */
function errorRows(table: Table): string[] {
  return table.rows.map((r) => `${r[0]} ${leadingCode(r[1]) ?? r[1]}`);
}

describe("the error types", () => {
  const { pairs, unknown } = answeredErrors();
  const errorTables = tables(apiDoc).filter((t) => t.header[0] === "status" && t.header[1] === "`error_type`");

  it("are all read from the code with their status", () => {
    expect(unknown).toEqual([]);
    expect(pairs.size).toBeGreaterThan(20);
    // One status per type: a type is one answer, wherever it is raised.
    const types = [...pairs].map((p) => p.split(" ")[1]);
    expect(types.filter((t, i) => types.indexOf(t) !== i)).toEqual([]);
  });

  it("are each in docs/api.md's error tables with their status, and the tables name no other", () => {
    expect(errorTables.map((t) => t.rows.length).length, `${API_DOC}: the "Errors" and the "Library loans" tables`).toBe(2);
    const documented = errorTables.flatMap(errorRows);
    expect([...new Set(documented)].sort()).toEqual([...pairs].sort());
  });

  it("named with a status anywhere in the README and the docs exist with that status", () => {
    // AWS's own answer to a request it refuses before the function runs, not one of the service's.
    const AWS = new Set(["403 Forbidden"]);
    for (const file of DOCS) {
      const text = read(file);
      const mentions = [...text.matchAll(/\b([1-5]\d\d)\)? `([A-Z][A-Za-z]+)`/g), ...text.matchAll(/`([1-5]\d\d) ([A-Z][A-Za-z]+)`/g)].map((m) => `${m[1]} ${m[2]}`);
      for (const mention of mentions) if (!AWS.has(mention)) expect([...pairs], `${file}: ${mention}`).toContain(mention);
    }
  });
});

describe("this test's own reading of the docs", () => {
  it("finds what it compares (a wrong heading or table shape would otherwise compare nothing)", () => {
    expect(commandSections.length).toBe(commands.size);
    expect(connectionCommands.sort()).toEqual(["convert", "health", "kindle-test", "loans", "return"]);
    expect(connectionOptions.map((o) => o.flags)).toContain("--url <url>");
    expect(DOCS.map((f) => knockInvocations(read(f)).length).reduce((a, b) => a + b)).toBeGreaterThan(20);
  });
});
