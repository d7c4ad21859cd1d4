// A stack deployed before issue 18's refactor (one contract, one route table) must `pulumi up`
// without replacing anything. The fixtures are the program's resources under the same mocks at
// commit e80e9b3 (the last commit before the refactor), taken with test/support/stack-snapshot.ts:
// the engine matches resources by URN, so an equal URN set means nothing is deleted or created,
// and equal inputs mean nothing is updated — except the two changes listed below, each an update
// in place or the designed image rebuild.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { corsMethods } from "../lambda/src/public";
import { snapshotStack, type SnapshotEntry } from "./support/stack-snapshot";

const FUNCTION_URL = "urn:pulumi:dev::knock-lambda::aws:lambda/functionUrl:FunctionUrl::knock-lambda-url";
const BUILD_COMMAND = "urn:pulumi:dev::knock-lambda::command:local:Command::knock-lambda-build-run";
const S3_POLICY = "urn:pulumi:dev::knock-lambda::aws:iam/rolePolicy:RolePolicy::knock-lambda-s3-policy";
/** Added since: ListBucket on the output bucket, so that a missing book reads as 404 (issue 19, reuse). */
const ADDED_S3_STATEMENTS = ["SeeMissingBooks"];

const FUNCTION = "urn:pulumi:dev::knock-lambda::aws:lambda/function:Function::knock-lambda";
/**
 * Added since, in TOKEN (and NONE) mode: the OPDS feed's own secret (issue 20), a created resource
 * (nothing replaced), and its hash in the function's environment (an update in place). The default
 * (AWS_IAM) stack has no feed and gains neither.
 */
const FEED_TOKEN = "urn:pulumi:dev::knock-lambda::random:index/randomBytes:RandomBytes::knock-opds-feed-token";
const ADDED_ENV = ["OPDS_FEED_TOKEN_SHA256"];

function before(name: string): SnapshotEntry[] {
  return JSON.parse(readFileSync(join(__dirname, "fixtures", "stack-before-issue-18", `${name}.json`), "utf8")) as SnapshotEntry[];
}

type Inputs = Record<string, unknown> & { cors?: { allowMethods?: string[] }; triggers?: unknown[]; environment?: Record<string, unknown> };

/**
 * The inputs with the intended differences taken out: the build context's hash (the build
 * command's first trigger and its BUILD_CONTEXT_SHA256: any change under lambda/ rebuilds the
 * image, which is how new code reaches the function), and the Function URL's CORS methods (now
 * every method the routes use; an update of the URL in place, compared on its own below). The
 * command's `dir` is the checkout the program ran from, which differs between machines. Statements
 * added to the function's S3 policy since (an update of the role policy in place) are taken out and
 * checked on their own below.
 */
function comparable(entries: readonly SnapshotEntry[]): SnapshotEntry[] {
  return entries.map((entry) => {
    const inputs = structuredClone(entry.inputs) as Inputs;
    if (entry.urn === BUILD_COMMAND) {
      if (Array.isArray(inputs.triggers)) inputs.triggers[0] = "<build context hash>";
      if (inputs.environment) inputs.environment.BUILD_CONTEXT_SHA256 = "<build context hash>";
      inputs.dir = "<checkout>";
    }
    if (entry.urn === FUNCTION_URL && inputs.cors) inputs.cors.allowMethods = ["<the routes' methods>"];
    const variables = (inputs.environment as { variables?: Record<string, unknown> } | undefined)?.variables;
    if (entry.urn === FUNCTION && variables) for (const key of ADDED_ENV) delete variables[key];
    // The fixtures were taken when the mocked RandomBytes gave one fixed pattern; it now derives its
    // bytes from the resource (test/support/pulumi-mocks.ts). A real stack keeps its bytes in state
    // across an up (its inputs, compared here, are unchanged), so the hash is the same there.
    if (entry.urn === FUNCTION && variables && "ACCESS_TOKEN_SHA256" in variables) variables.ACCESS_TOKEN_SHA256 = "<the token's hash>";
    if (entry.urn === S3_POLICY && typeof inputs.policy === "string") {
      const policy = JSON.parse(inputs.policy) as { Statement: { Sid?: string }[] };
      policy.Statement = policy.Statement.filter((st) => !ADDED_S3_STATEMENTS.includes(st.Sid ?? ""));
      inputs.policy = JSON.stringify(policy);
    }
    return { urn: entry.urn, inputs };
  });
}

describe.each([
  ["default", {}],
  ["token", { "knock-lambda:function_url_auth": "TOKEN" }],
])("a %s stack deployed before the refactor", (name, config) => {
  beforeEach(() => {
    vi.resetModules();
  });

  it("keeps every resource's URN, so nothing is replaced, and every input but the intended changes", async () => {
    const all = await snapshotStack(config);
    const old = before(name);
    const added = name === "token" ? [FEED_TOKEN] : [];
    expect(all.filter((e) => !old.some((o) => o.urn === e.urn)).map((e) => e.urn)).toEqual(added);
    const now = all.filter((e) => !added.includes(e.urn));
    expect(now.map((e) => e.urn)).toEqual(old.map((e) => e.urn));
    const env = (e: SnapshotEntry[]) => Object.keys((e.find((r) => r.urn === FUNCTION)?.inputs as { environment: { variables: Record<string, unknown> } }).environment.variables);
    expect(env(now).filter((k) => !env(old).includes(k))).toEqual(name === "token" ? ADDED_ENV : []);
    // No resource has a parent, so a URN is its type and name alone.
    for (const e of now) expect(e.urn.split("::")[2]).not.toContain("$");
    expect(comparable(now)).toEqual(comparable(old));
    const cors = (e: SnapshotEntry[]) => (e.find((r) => r.urn === FUNCTION_URL)?.inputs as Inputs).cors?.allowMethods;
    expect(cors(old)).toEqual(["GET", "POST"]);
    expect(cors(now)).toEqual(corsMethods());
    expect(cors(now)).toContain("DELETE");
    const sids = (e: SnapshotEntry[]) => (JSON.parse(String((e.find((r) => r.urn === S3_POLICY)?.inputs as Inputs).policy)) as { Statement: { Sid: string }[] }).Statement.map((st) => st.Sid);
    expect(sids(now).filter((sid) => !sids(old).includes(sid))).toEqual(ADDED_S3_STATEMENTS);
  }, 120_000);
});
