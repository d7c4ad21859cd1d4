// 50 first conversions at once against knock serve (one process, many requests in flight): one Adobe
// activation, and every book converted — each extra activation would spend one of the distributor's
// device slots. Real HTTP requests to the real server, the libgourou stand-ins recording activations.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeAcsm } from "../handler/harness";
import { cleanup, startStandinService, type StandinService } from "./helpers";

let service: StandinService;
const scratch: string[] = [];

beforeAll(async () => {
  service = await startStandinService();
  scratch.push(service.stateDir, service.dataDir);
}, 60_000);

afterAll(async () => {
  await service?.stop();
  cleanup(scratch);
});

describe("knock serve with no device yet", () => {
  it("runs one activation for 50 concurrent first conversions, and converts all 50", async () => {
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) =>
      fetch(service.url, {
        method: "POST",
        headers: { "content-type": "application/vnd.adobe.adept+xml" },
        body: makeAcsm({ title: `Book ${i}` }),
      }).then(async (res) => ({ status: res.status, body: await res.text() }))));

    expect(answers.filter((a) => a.status !== 200).map((a) => a.body)).toEqual([]);
    const activations = readFileSync(join(service.stateDir, "activations.log"), "utf8").trim().split("\n");
    expect(activations).toHaveLength(1);
  }, 300_000);
});
