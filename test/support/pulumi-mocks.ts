import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
// Internal to @pulumi/pulumi (marked @internal, but exported by the module): see settled().
import * as pulumiSettingsModule from "@pulumi/pulumi/runtime/settings";

const pulumiSettings = pulumiSettingsModule as unknown as { waitForRPCs(): Promise<void> };
import { applyProjectConfig, repoProject, repoStackConfig } from "./pulumi-cli-config";

/** A resource the program registered, as the engine would have seen it. */
export interface RecordedResource {
  readonly type: string;
  readonly name: string;
  readonly inputs: Record<string, unknown>;
  readonly id: string;
  readonly state: Record<string, unknown>;
}

export const ACCOUNT_ID = "123456789012";
export const REGION = "us-east-2";
export const FAKE_DIGEST = `sha256:${"ab".repeat(32)}`;
export const FAKE_BUILD_ID = "knock-lambda-build-dev:7c1e9f43-2a1b-4c55-9d3e-0a1b2c3d4e5f";

/**
 * The bytes the mocked `random.RandomBytes` "generates": derived from the resource's name and its
 * `keepers`, so tests can look for a token (and anything derived from it) in every resource's
 * inputs, two RandomBytes never share bytes, and a change of keepers gives new bytes — as the
 * random provider generates afresh for each resource and recreates one whose keepers change
 * (@pulumi/random 4.21 randomBytes.d.ts, `keepers`: "when changed, will trigger recreation").
 */
export function fakeRandomBytes(length: number, name: string, keepers: Readonly<Record<string, string>> = {}): Buffer {
  const seed = `${name}\n${JSON.stringify(Object.entries(keepers).sort())}`;
  const out: Buffer[] = [];
  for (let i = 0; Buffer.concat(out).length < length; i++) out.push(createHash("sha256").update(`${seed}\n${i}`).digest());
  return Buffer.concat(out).subarray(0, length);
}

/** What the build runner prints on success (its real format: progress, the build id, the digest last). */
export const FAKE_RUNNER_STDOUT = [
  "starting CodeBuild project knock-lambda-build-dev in us-east-2",
  `build id: ${FAKE_BUILD_ID}`,
  "[0m42s] phase BUILD",
  "[4m10s] build SUCCEEDED",
  FAKE_DIGEST,
].join("\n");

/**
 * Installs Pulumi mocks that record every resource, answer with realistic ids/ARNs/URLs, and throw on
 * any provider function the program is not expected to call.
 *
 * The program gets its configuration the way the Pulumi CLI would hand it over: this repository's
 * Pulumi.yaml applied to the stack's settings file (Pulumi.<stack>.yaml, if any) plus `config`, with
 * the CLI's own checks (see ./pulumi-cli-config), so a Pulumi.yaml the CLI refuses fails here too.
 */
export async function installMocks(options: { config?: Record<string, string>; secrets?: readonly string[]; preview?: boolean; stack?: string } = {}): Promise<RecordedResource[]> {
  const stack = options.stack ?? "dev";
  const resources: RecordedResource[] = [];
  // The keys set with --secret, as the CLI names them to the program (@pulumi/pulumi 3,
  // runtime/config.ts: PULUMI_CONFIG_SECRET_KEYS, a JSON array of full keys).
  process.env.PULUMI_CONFIG_SECRET_KEYS = JSON.stringify(options.secrets ?? []);
  pulumi.runtime.setAllConfig(applyProjectConfig(repoProject(), stack, { ...repoStackConfig(stack), ...options.config }));
  await pulumi.runtime.setMocks(
    {
      newResource(args: pulumi.runtime.MockResourceArgs) {
        const { id, state } = fakeState(args.type, args.name, args.inputs);
        resources.push({ type: args.type, name: args.name, inputs: args.inputs, id, state });
        return { id, state };
      },
      call(args: pulumi.runtime.MockCallArgs) {
        switch (args.token) {
          case "aws:index/getCallerIdentity:getCallerIdentity":
            return { accountId: ACCOUNT_ID, arn: `arn:aws:iam::${ACCOUNT_ID}:user/deployer`, userId: "AIDAEXAMPLE", id: ACCOUNT_ID };
          case "aws:index/getPartition:getPartition":
            return { partition: "aws", dnsSuffix: "amazonaws.com", reverseDnsPrefix: "com.amazonaws", id: "aws" };
          default:
            throw new Error(`unexpected provider call ${args.token}`);
        }
      },
    },
    "knock-lambda",
    stack,
    options.preview ?? false,
  );
  return resources;
}

function fakeState(type: string, name: string, inputs: Record<string, unknown>): { id: string; state: Record<string, unknown> } {
  const suffix = "a1b2c3d";
  switch (type) {
    case "aws:s3/bucket:Bucket": {
      const bucket = `${name}-${suffix}`;
      return { id: bucket, state: { ...inputs, bucket, arn: `arn:aws:s3:::${bucket}` } };
    }
    case "aws:ecr/repository:Repository": {
      const repo = String(inputs.name);
      return { id: repo, state: { ...inputs, arn: `arn:aws:ecr:${REGION}:${ACCOUNT_ID}:repository/${repo}`, repositoryUrl: `${ACCOUNT_ID}.dkr.ecr.${REGION}.amazonaws.com/${repo}` } };
    }
    case "aws:iam/role:Role": {
      const role = `${name}-${suffix}`;
      return { id: role, state: { ...inputs, name: role, arn: `arn:aws:iam::${ACCOUNT_ID}:role/${role}` } };
    }
    case "aws:cloudwatch/logGroup:LogGroup":
      return { id: String(inputs.name), state: { ...inputs, arn: `arn:aws:logs:${REGION}:${ACCOUNT_ID}:log-group:${String(inputs.name)}` } };
    case "aws:codebuild/project:Project":
      return { id: String(inputs.name), state: { ...inputs, arn: `arn:aws:codebuild:${REGION}:${ACCOUNT_ID}:project/${String(inputs.name)}` } };
    case "aws:lambda/function:Function":
      return { id: String(inputs.name), state: { ...inputs, arn: `arn:aws:lambda:${REGION}:${ACCOUNT_ID}:function:${String(inputs.name)}` } };
    case "aws:lambda/functionUrl:FunctionUrl":
      return { id: String(inputs.functionName), state: { ...inputs, functionUrl: `https://abcdefghijklmnop.lambda-url.${REGION}.on.aws/` } };
    case "random:index/randomBytes:RandomBytes": {
      // The provider's schema (@pulumi/random 4.21 randomBytes.d.ts, from terraform-provider-random's
      // random_bytes): inputs `length` and `keepers`; outputs `base64` and lowercase `hex` (exactly
      // twice `length` characters), both secret. Imports name the resource by its base64 value.
      const bytes = fakeRandomBytes(Number(inputs.length), name, (inputs.keepers ?? {}) as Record<string, string>);
      return { id: bytes.toString("base64"), state: { ...inputs, base64: bytes.toString("base64"), hex: bytes.toString("hex") } };
    }
    // The ARN of a parameter whose name starts with "/" has no second slash (SSM User Guide, "parameter ARNs").
    case "aws:ssm/parameter:Parameter": {
      const paramName = String(inputs.name);
      return { id: paramName, state: { ...inputs, arn: `arn:aws:ssm:${REGION}:${ACCOUNT_ID}:parameter${paramName.startsWith("/") ? "" : "/"}${paramName}`, tier: "Standard" } };
    }
    case "command:local:Command":
      return { id: `${name}-${suffix}`, state: { ...inputs, stdout: FAKE_RUNNER_STDOUT, stderr: "" } };
    default:
      return { id: `${name}-${suffix}`, state: { ...inputs } };
  }
}

/** Resolves an Output's value (or undefined when unknown, as during preview). */
export function valueOf<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply((v) => { resolve(v); return v; }));
}

/**
 * Waits until every resource the program has started to register is registered. @pulumi/pulumi keeps
 * one promise chain of outstanding RPCs (runtime/settings.ts: every registration takes an
 * `rpcKeepAlive()` when its constructor runs and releases it once the monitor — here the mocks —
 * answered); `waitForRPCs()` is what `disconnect()` itself awaits before the program exits, so it
 * resolves only when that chain is drained, however slow the machine. A registration that waits on an
 * unresolved input (the build-context archive, the runner's digest) holds the chain open until then.
 * No fixed sleeps: a quiet interval proves nothing on a loaded machine.
 */
export async function settled(resources: readonly RecordedResource[]): Promise<void> {
  for (let seen = -1; seen !== resources.length; ) {
    seen = resources.length;
    await pulumiSettings.waitForRPCs();
    // A resource registered from an apply callback would only start now; drain again until none did.
    await new Promise((r) => setImmediate(r));
  }
}

/** The one resource registered under a logical name (fails loudly if there is none or several). */
export function byName(resources: readonly RecordedResource[], name: string): RecordedResource {
  const found = resources.filter((r) => r.name === name);
  if (found.length !== 1) throw new Error(`expected one resource named ${name}, found ${found.length}: ${resources.map((r) => r.name).join(", ")}`);
  return found[0];
}

/** Parses a policy document that the program passed as a JSON string. */
export function policyOf(resource: RecordedResource, key = "policy"): { Statement: Array<{ Sid?: string; Effect: string; Action: string[] | string; Resource: string[] | string; Condition?: unknown; Principal?: unknown }> } {
  return JSON.parse(String(resource.inputs[key]));
}
