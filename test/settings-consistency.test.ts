// One settings table (lambda/src/contract/settings.ts) decides every limit; each side that reads a
// setting — the Pulumi program, the function from its environment, the build runner from its
// environment, `knock serve` from its flags — must accept exactly that range. These tests walk the
// table, so a new setting or a changed limit is held on every side without writing it again.
import { describe, expect, it } from "vitest";
import { loadConfig as loadStackConfig, type ConfigSource } from "../config";
import { loadConfig as loadFunctionConfig } from "../lambda/src/config";
import { parseRunnerEnv } from "../infra/build-runner/options";
import { FUNCTION_ENV, SETTINGS, type SettingKey, type SettingSpec } from "../lambda/src/public";

const entries = Object.entries(SETTINGS) as [SettingKey, SettingSpec][];
const integers = entries.filter((e): e is [SettingKey, Extract<SettingSpec, { type: "integer" }>] => e[1].type === "integer" && e[1].values === undefined);

/** The values at and just beyond a range's ends. */
function edges(spec: { min: number; max: number }) {
  return { accepted: [spec.min, spec.max], refused: [spec.min - 1, spec.max + 1] };
}

const stack = (key: string, value: string) => {
  const source: ConfigSource = (k) => (k === key ? value : k === "aws:region" ? "us-east-2" : undefined);
  return loadStackConfig(source, { project: "knock-lambda", stack: "dev" }, {});
};

describe("the Pulumi program accepts each integer setting's range and nothing beyond it", () => {
  it.each(integers)("%s", (key, spec) => {
    const { accepted, refused } = edges(spec);
    for (const v of accepted) expect(() => stack(key, String(v))).not.toThrow();
    for (const v of refused) {
      if (v === spec.unset) continue;
      expect(() => stack(key, String(v))).toThrow(`Invalid configuration ${key}="${v}"`);
    }
  });
});

describe("the function reads the settings handed to it with the same limits", () => {
  const base = { [FUNCTION_ENV.outputBucket]: "o", [FUNCTION_ENV.deviceBucket]: "d", [FUNCTION_ENV.toolsDir]: "/opt/bin" };
  const carried = entries.filter(([, spec]) => Object.values(FUNCTION_ENV).includes(spec.env as never));

  it("every setting the function reads is in the table with its variable", () => {
    expect(carried.map(([k]) => k).sort()).toEqual(["download_url_expiry_seconds", "function_url_auth"]);
  });

  it.each(carried)("%s", (_key, spec) => {
    const env = spec.env!;
    if (spec.type === "integer") {
      const { accepted, refused } = edges(spec);
      for (const v of accepted) expect(() => loadFunctionConfig({ ...base, [env]: String(v) })).not.toThrow();
      for (const v of refused) expect(() => loadFunctionConfig({ ...base, [env]: String(v) })).toThrow(`${env} is "${v}"; expected a whole number from ${spec.min} to ${spec.max}`);
    } else {
      for (const v of spec.values ?? []) {
        const extra = v === "TOKEN" ? { [FUNCTION_ENV.accessTokenSha256]: "ab".repeat(32) } : {};
        expect(() => loadFunctionConfig({ ...base, ...extra, [env]: v })).not.toThrow();
      }
      expect(() => loadFunctionConfig({ ...base, [env]: "PUBLIC" })).toThrow(`${env} is "PUBLIC"; expected one of ${spec.values!.join(", ")}`);
    }
  });
});

describe("the build runner reads the stack's settings with the same limits", () => {
  const runnerBase = { CODEBUILD_PROJECT_NAME: "knock-lambda-build-dev", AWS_REGION: "us-east-2" };
  const carried = integers.filter(([, spec]) => spec.env?.startsWith("CODEBUILD_"));

  it("every setting the runner reads is in the table with its variable", () => {
    expect(carried.map(([k]) => k).sort()).toEqual(["codebuild_max_retries", "codebuild_retry_delay", "codebuild_timeout_minutes"]);
  });

  it.each(carried)("%s", (key, spec) => {
    const env = spec.env!;
    const { accepted, refused } = edges(spec);
    for (const v of accepted) expect(() => parseRunnerEnv({ ...runnerBase, [env]: String(v) })).not.toThrow();
    for (const v of refused) {
      expect(() => parseRunnerEnv({ ...runnerBase, [env]: String(v) })).toThrow(`${env}="${v}" is not allowed: expected a whole number from ${spec.min} to ${spec.max}`);
    }
    expect(() => parseRunnerEnv({ ...runnerBase, [env]: `${spec.min}.5` })).toThrow(`config key ${key}`);
  });
});
