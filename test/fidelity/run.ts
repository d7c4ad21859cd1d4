// `npm run test:fidelity`: runs every scenario of ./scenarios.ts against the real libgourou tools
// (the folder named by LIBGOUROU_REAL_BIN_DIR) and against the stand-in, and compares exit statuses
// and output lines. Every proxy variable points at a closed loopback port, so nothing leaves the
// machine; each run is bounded in time and output. Without LIBGOUROU_REAL_BIN_DIR it only says how
// to run it and exits 0. It names the libgourou version it compared (the real tools' own -V) and
// warns when that is not the release the stand-in models. After ./scenarios.ts it runs
// ./device-export.ts (issue 19: a device exported by `knock device export` is accepted by the real
// tools); a scenario marked realOnly judges the real tools alone, against its expected lines.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { DEVICE_EXPORT_SCENARIOS } from "./device-export";
import { SCENARIOS, STANDIN_BIN_DIR, closedLoopbackPort, comparable, makeFixtureKit, offlineEnv, runScenario, type RunResult } from "./scenarios";

function show(label: string, r: RunResult): string {
  const lines = [`    ${label}: exit ${r.exit}`, ...r.stdout.map((l) => `      | ${JSON.stringify(l)}`)];
  if (r.stderr.length) lines.push(...r.stderr.map((l) => `      ! ${JSON.stringify(l)}`));
  if (r.files) lines.push(`      files: ${JSON.stringify(r.files)}`);
  if (r.requests) lines.push(...r.requests.map((l) => `      > ${JSON.stringify(l)}`));
  return lines.join("\n");
}

/** The version a tools folder reports (utils/utils_common.cpp, version()), or why it reports none. */
function reportedVersion(binDir: string): string {
  const run = spawnSync(join(binDir, "acsmdownloader"), ["-V"], { encoding: "utf8", timeout: 60_000, env: { PATH: process.env.PATH, LANG: "C" } });
  const version = /^Current libgourou version : (\S+)$/m.exec(run.stdout ?? "")?.[1];
  return version ?? `unknown (acsmdownloader -V printed ${JSON.stringify((run.stdout ?? "").trim() || String(run.error ?? run.stderr))})`;
}

async function main(): Promise<number> {
  const realDir = process.env.LIBGOUROU_REAL_BIN_DIR;
  if (!realDir) {
    console.log(`fidelity check skipped: set LIBGOUROU_REAL_BIN_DIR to a folder holding the real adept_activate, acsmdownloader, adept_remove and adept_loan_mgt (libgourou ${reportedVersion(STANDIN_BIN_DIR)}, the release the stand-in models) to compare the stand-in with them.`);
    return 0;
  }
  const missing = ["adept_activate", "acsmdownloader", "adept_remove", "adept_loan_mgt"].filter((t) => !existsSync(join(realDir, t)));
  if (missing.length) {
    console.error(`fidelity check failed: ${realDir} lacks ${missing.join(", ")}. Build them (see README, lambda/Dockerfile target "tools") and copy /opt/libgourou/bin out of the image.`);
    return 1;
  }
  const realVersion = reportedVersion(realDir);
  const modelled = reportedVersion(STANDIN_BIN_DIR);
  console.log(`comparing the stand-in (models libgourou ${modelled}) with the real libgourou ${realVersion} tools in ${realDir}`);
  if (realVersion !== modelled) {
    console.log(`warning: the real tools are libgourou ${realVersion}, the stand-in models ${modelled}: expect the version's own differences, and build ${modelled} (lambda/Dockerfile target "tools") for a meaningful check.`);
  }
  console.error("making the fixture device (openssl) ...");
  const kit = makeFixtureKit();
  const env = offlineEnv(await closedLoopbackPort());
  // FIDELITY_SCENARIOS=<text>: only the scenarios whose name contains it (e.g. "knock device export").
  const only = process.env.FIDELITY_SCENARIOS?.trim();
  const scenarios = [...SCENARIOS, ...DEVICE_EXPORT_SCENARIOS].filter((s) => !only || s.name.includes(only));
  let differing = 0;
  let failedRealOnly = 0;
  for (const scenario of scenarios) {
    console.error(`running: ${scenario.name} ...`);
    const real = comparable(scenario, await runScenario(scenario, realDir, kit, env));
    const standin = scenario.realOnly === undefined ? comparable(scenario, await runScenario(scenario, STANDIN_BIN_DIR, kit, env)) : undefined;
    const expected = { stderr: [], ...scenario.expected };
    const asTable = isDeepStrictEqual(
      { exit: real.exit, stdout: real.stdout, stderr: real.stderr, ...(real.files ? { files: real.files } : {}), ...(real.requests ? { requests: real.requests } : {}) },
      expected,
    );
    if (standin === undefined) {
      // Only the real tools are run: the scenario's expected lines are the whole check.
      console.log(`${asTable ? "real only" : "FAILED   "} ${scenario.name}${asTable ? "" : "  (real tools differ from the scenario's expected lines)"}  (stand-in not run: ${scenario.realOnly})`);
      if (!asTable) {
        failedRealOnly++;
        console.log(show("real   ", real));
      }
      continue;
    }
    const same = isDeepStrictEqual(real, standin);
    console.log(`${same ? "same     " : "DIFFERENT"} ${scenario.name}${asTable ? "" : "  (real tools differ from the scenario's expected lines)"}`);
    if (!same || !asTable) {
      differing += same ? 0 : 1;
      console.log(show("real   ", real));
      if (!same) console.log(show("stand-in", standin));
    }
  }
  const compared = scenarios.filter((s) => s.realOnly === undefined).length;
  const realOnly = scenarios.length - compared;
  console.log(
    (differing === 0
      ? `fidelity (libgourou ${realVersion}): all ${compared} compared scenarios match the real tools`
      : `fidelity (libgourou ${realVersion}): ${differing} of ${compared} compared scenarios differ; fix test/fixtures/libgourou/libgourou-standin`) +
      (failedRealOnly === 0 ? `; ${realOnly} real-only ${realOnly === 1 ? "scenario passes" : "scenarios pass"}` : `; ${failedRealOnly} of ${realOnly} real-only scenarios fail: see their lines above`),
  );
  return differing === 0 && failedRealOnly === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`fidelity check failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
