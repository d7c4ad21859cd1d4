// Issue 19's check: a device that went through `knock device import` and `knock device export` is
// still one libgourou's own tools accept. Each scenario here builds a device, stores it in a
// `knock serve` data folder with the real CLI (where it is held as the service's device bucket
// holds it: one adept/device.json document), exports it as a zip, unzips that with Debian's
// `unzip` into a fresh folder and hands the folder to a tool with `-D`.
//
// The device cannot come from adept_activate: that needs Adobe's activation server. It is
// FixtureKit's (./scenarios.ts), written by libgourou 0.8.9's own rules, and the scenarios below
// show which of those rules the tools check when they load and use a device:
// - loading (the DRMProcessor constructor, src/libgourou.cpp, then Device's and User's,
//   src/device.cpp and src/user.cpp): devicesalt must be exactly 16 bytes (its contents are read,
//   not checked); device.xml must hold deviceClass, deviceSerial, deviceName, deviceType and
//   fingerprint; activation.xml the pkcs12, user, device, fingerprint, authenticationCertificate,
//   privateLicenseKey and username elements; and the two fingerprints must be equal. The
//   fingerprint is base64(SHA-1(serial + device key)) when Device::makeFingerprint writes it, but
//   loading never recomputes it. adept_loan_mgt -l (utils/adept_loan_mgt.cpp, LoanMGT::run) does
//   only this, then lists the loans folder: it accepts any 16 bytes as devicesalt.
// - using the key: DRMProcessor::signNode (src/libgourou.cpp) opens the user's <adept:pkcs12> with
//   base64(devicesalt) as its password (RSAPrivateEncrypt with RSA_KEY_PKCS12; PKCS12_parse in
//   utils/drmprocessorclientimpl.cpp, else 0x5001, CLIENT_INVALID_PKCS12). acsmdownloader signs
//   the fulfil request (DRMProcessor::fulfill) before its first request, and builds the operator's
//   /Auth request from the same PKCS#12 (buildAuthRequest, extractCertificate): a run that reaches
//   the network has used the key twice, and a wrong devicesalt stops it before any request.
import { execFileSync } from "node:child_process";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DEVICE_FILES, DEVICE_OBJECT_KEY, readDeviceDocument } from "../../lambda/src/public";
import { CONNECTION_REFUSED, TUNNEL_REFUSED, exception, type FixtureKit, type Scenario } from "./scenarios";

const KNOCK = join(__dirname, "..", "..", "client", "bin", "knock.js");
/** A shop's ACSM (https operatorURL, so its first request through a proxy is a CONNECT). */
const ACSM_FIXTURE = join(__dirname, "..", "fixtures", "libgourou", "sample-book.acsm");
/** The CONNECT libcurl sends for the fixture's operator (https://acs.example-library.test/fulfillment). */
const OPERATOR_CONNECT = "CONNECT acs.example-library.test:443 HTTP/1.1";

/** Runs the real `knock` CLI; a failure throws with knock's own message, so the harness reports it. */
function knock(args: string[]): void {
  try {
    execFileSync(process.execPath, [KNOCK, ...args], { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
  } catch (err) {
    const { stderr, status } = err as { stderr?: string; status?: number | null };
    throw new Error(`knock ${args.join(" ")} failed (exit ${status ?? "?"}): ${(stderr ?? String(err)).trim()}`, { cause: err });
  }
}

/**
 * Writes the kit's device to <root>/made, imports it into the data folder <root>/knock-data,
 * exports it to <root>/device.zip and unzips that into <root>/exported, the folder returned.
 * Throws unless the data folder holds the device as the service does and the round trip kept all
 * three files byte for byte: then a tool's verdict is on those very files.
 */
function deviceThroughKnock(root: string, kit: FixtureKit): string {
  const made = join(root, "made");
  const data = join(root, "knock-data");
  const zip = join(root, "device.zip");
  const exported = join(root, "exported");
  kit.writeDevice(made);
  knock(["device", "import", made, "--data", data, "--yes"]);
  const stored = readDeviceDocument(readFileSync(join(data, DEVICE_OBJECT_KEY), "utf8"));
  knock(["device", "export", zip, "--data", data]);
  execFileSync("unzip", ["-q", zip, "-d", exported], { stdio: ["ignore", "ignore", "pipe"] });
  for (const name of DEVICE_FILES) {
    const original = readFileSync(join(made, name));
    if (!stored.files[name].equals(original)) throw new Error(`${DEVICE_OBJECT_KEY} in the data folder does not hold ${name} as imported`);
    if (!readFileSync(join(exported, name)).equals(original)) throw new Error(`${name} unzipped from the export differs from the imported one`);
  }
  return exported;
}

/** Replaces devicesalt with 16 other bytes (each one inverted): still a well-formed key file. */
function changeDeviceKey(deviceDir: string): void {
  const key = readFileSync(join(deviceDir, "devicesalt"));
  writeFileSync(join(deviceDir, "devicesalt"), key.map((b) => b ^ 0xff));
}

/** The fixture ACSM, copied into the scenario's folder. */
function acsm(root: string): string {
  copyFileSync(ACSM_FIXTURE, join(root, "book.acsm"));
  return join(root, "book.acsm");
}

export const DEVICE_EXPORT_SCENARIOS: readonly Scenario[] = [
  {
    name: "knock device export, unzipped: adept_loan_mgt -D DIR -l loads the device and lists",
    tool: "adept_loan_mgt",
    setup: (root, kit) => ["-D", deviceThroughKnock(root, kit), "-l"],
    expected: { exit: 0, stdout: ["No books loaned"] },
  },
  {
    name: "knock device export, unzipped: acsmdownloader signs with the device key, then fails at the network (down)",
    tool: "acsmdownloader",
    setup: (root, kit) => ["-D", deviceThroughKnock(root, kit), "-O", join(root, "out"), acsm(root)],
    expected: { exit: 1, stdout: CONNECTION_REFUSED },
  },
  {
    name: "knock device export, unzipped: acsmdownloader's first request is the operator's (a CONNECT, refused)",
    tool: "acsmdownloader",
    setup: (root, kit) => ["-D", deviceThroughKnock(root, kit), "-O", join(root, "out"), acsm(root)],
    proxy: () => 403,
    expected: { exit: 1, stdout: TUNNEL_REFUSED, requests: Array<string>(5).fill(OPERATOR_CONNECT) },
  },
  {
    name: "knock device export, devicesalt then changed: acsmdownloader cannot open the PKCS#12, sends nothing",
    tool: "acsmdownloader",
    setup: (root, kit) => {
      const device = deviceThroughKnock(root, kit);
      changeDeviceKey(device);
      return ["-D", device, "-O", join(root, "out"), acsm(root)];
    },
    proxy: () => 403,
    realOnly: "the stand-in does not check the PKCS#12 password (test/fixtures/libgourou/libgourou-standin, sign())",
    // OpenSSL 3's message for a PKCS#12 whose MAC does not verify under the password given.
    expected: { exit: 1, stdout: exception("0x5001", "error:11800071:PKCS12 routines::mac verify failure"), requests: [] },
  },
  {
    name: "knock device export, devicesalt then changed: adept_loan_mgt -l still lists (it never uses the key)",
    tool: "adept_loan_mgt",
    setup: (root, kit) => {
      const device = deviceThroughKnock(root, kit);
      changeDeviceKey(device);
      return ["-D", device, "-l"];
    },
    expected: { exit: 0, stdout: ["No books loaned"] },
  },
];
