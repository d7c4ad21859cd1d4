// `npm run test:fidelity`: runs every scenario of ./scenarios.ts against the real libgourou tools
// (the folder named by LIBGOUROU_REAL_BIN_DIR) and against the stand-in, and compares exit statuses
// and output lines. Every proxy variable points at a closed loopback port, so nothing leaves the
// machine; each run is bounded in time and output. Without LIBGOUROU_REAL_BIN_DIR it only says how
// to run it and exits 0. It names the libgourou version it compared (the real tools' own -V) and
// warns when that is not the release the stand-in models.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
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
  let differing = 0;
  for (const scenario of SCENARIOS) {
    console.error(`running: ${scenario.name} ...`);
    const real = comparable(scenario, await runScenario(scenario, realDir, kit, env));
    const standin = comparable(scenario, await runScenario(scenario, STANDIN_BIN_DIR, kit, env));
    const same = isDeepStrictEqual(real, standin);
    const expected = { stderr: [], ...scenario.expected };
    const asTable = isDeepStrictEqual(
      { exit: real.exit, stdout: real.stdout, stderr: real.stderr, ...(real.files ? { files: real.files } : {}), ...(real.requests ? { requests: real.requests } : {}) },
      expected,
    );
    console.log(`${same ? "same     " : "DIFFERENT"} ${scenario.name}${asTable ? "" : "  (real tools differ from the scenario's expected lines)"}`);
    if (!same || !asTable) {
      differing += same ? 0 : 1;
      console.log(show("real   ", real));
      if (!same) console.log(show("stand-in", standin));
    }
  }
  console.log(
    differing === 0
      ? `fidelity (libgourou ${realVersion}): all ${SCENARIOS.length} scenarios match the real tools`
      : `fidelity (libgourou ${realVersion}): ${differing} of ${SCENARIOS.length} scenarios differ; fix test/fixtures/libgourou/libgourou-standin`,
  );
  return differing === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`fidelity check failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
