// The scenarios the libgourou stand-in is held to: each sets up a folder, runs one tool, and states
// what libgourou 0.8.7 prints (observed with the real tools, offline, with every proxy variable on a
// closed loopback port; see test/fixtures/libgourou/libgourou-standin for the source files each
// behaviour comes from). test/fixtures/standin.test.ts runs them against the stand-in alone;
// test/fidelity/run.ts runs them against the real tools as well and compares the two.
import { execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

/** The stand-in's tool wrappers. */
export const STANDIN_BIN_DIR = join(__dirname, "..", "fixtures", "libgourou", "tools");

/** Output kept per stream; beyond it the run is stopped (adept_activate's endless prompt). */
export const MAX_OUTPUT_BYTES = 4096;
/** Wall time per run; the slowest real case (5 connection attempts) takes about 4 s. */
export const RUN_TIMEOUT_MS = 20_000;

/** A loan as adept_loan_mgt reads it (utils/adept_loan_mgt.cpp) and acsmdownloader writes it. */
export const SAMPLE_LOAN = {
  file: "a1b2c3d4e5f60718",
  id: "urn:uuid:6b1f4c1e-1d3a-4c52-9a0b-2f1d6e7c8a90",
  operatorURL: "http://acs.example-library.test/fulfillment",
  validity: "2026-12-10T10:00:00+00:00",
  name: "Der Prozess",
} as const;

/** What one run produced, with the scenario's folder shown as <tmp> and the tools' folder as <bin>. */
export interface RunResult {
  /** Exit status, or "stopped" when the output or time limit ended the run. */
  readonly exit: number | "stopped";
  readonly stdout: string[];
  readonly stderr: string[];
  /** Files below the scenario folder after the run (relative, sorted), when the scenario asks. */
  readonly files?: string[];
}

export interface Scenario {
  /** Short name, also the table row it checks. */
  readonly name: string;
  readonly tool: "adept_activate" | "acsmdownloader" | "adept_remove" | "adept_loan_mgt";
  /** Prepares `root` (a fresh folder, also the working directory) and returns the arguments. */
  readonly setup: (root: string, kit: FixtureKit) => string[];
  /** List the files under these folders (relative to root) after the run. */
  readonly listFiles?: string[];
  /** Only the first lines of stdout count (the run is cut off). */
  readonly compareLines?: number;
  /** The lines libgourou 0.8.7 prints (stdout), exit status and, where listed, the files. */
  readonly expected: { exit: number | "stopped"; stdout: string[]; stderr?: string[]; files?: string[] };
}

/** Shared material: one valid device (with a PKCS#12 the real tools can sign with). */
export interface FixtureKit {
  /** Writes a complete device into `dir`; `mismatch` gives activation.xml another fingerprint. */
  writeDevice(dir: string, options?: { mismatch?: boolean }): void;
}

/**
 * Makes the device material once: a 16-byte device key, a 1024-bit RSA key in a PKCS#12 protected
 * by base64(device key) — DRMProcessor::signNode (src/libgourou.cpp) opens it with that password
 * and needs a 128-byte signature (RSA_KEY_SIZE in include/libgourou_common.h). Uses the openssl CLI.
 */
export function makeFixtureKit(): FixtureKit {
  const work = mkdtempSync(join(tmpdir(), "knock-fidelity-kit-"));
  try {
    const key = randomBytes(16);
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:1024", "-nodes", "-days", "2", "-subj", "/CN=knock fidelity",
      "-keyout", join(work, "key.pem"), "-out", join(work, "cert.pem")], { stdio: "ignore" });
    execFileSync("openssl", ["pkcs12", "-export", "-inkey", join(work, "key.pem"), "-in", join(work, "cert.pem"),
      "-passout", `pass:${key.toString("base64")}`, "-out", join(work, "user.p12")], { stdio: "ignore" });
    const pkcs12 = readFileSync(join(work, "user.p12")).toString("base64");
    const cert = readFileSync(join(work, "cert.pem"), "utf8").replace(/-----[A-Z ]+-----|\s/g, "");
    const serial = "0123456789abcdef0123";
    const fingerprint = createHash("sha1").update(serial).update(key).digest("base64");
    return {
      writeDevice(dir, options = {}) {
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, "devicesalt"), key);
        writeFileSync(join(dir, "device.xml"), deviceXml(serial, fingerprint));
        const otherFingerprint = createHash("sha1").update("another device").digest("base64");
        writeFileSync(join(dir, "activation.xml"), activationXml(pkcs12, cert, options.mismatch ? otherFingerprint : fingerprint));
      },
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** device.xml as Device::createDeviceFile (src/device.cpp) writes it. */
function deviceXml(serial: string, fingerprint: string): string {
  return `<?xml version="1.0"?>
<adept:deviceInfo xmlns:adept="http://ns.adobe.com/adept">
  <adept:deviceClass>Desktop</adept:deviceClass>
  <adept:deviceSerial>${serial}</adept:deviceSerial>
  <adept:deviceName>fidelity</adept:deviceName>
  <adept:deviceType>standalone</adept:deviceType>
  <adept:version name="hobbes" value="10.0.4" />
  <adept:version name="clientOS" value="Linux" />
  <adept:version name="clientLocale" value="C" />
  <adept:fingerprint>${fingerprint}</adept:fingerprint>
</adept:deviceInfo>
`;
}

/** activation.xml with every element User::parseActivationFile (src/user.cpp) requires. */
function activationXml(pkcs12: string, cert: string, fingerprint: string): string {
  return `<?xml version="1.0"?>
<activationInfo xmlns="http://ns.adobe.com/adept">
  <adept:activationServiceInfo xmlns:adept="http://ns.adobe.com/adept">
    <adept:authURL>http://adeactivate.adobe.com/adept</adept:authURL>
    <adept:userInfoURL>http://adeactivate.adobe.com/adept</adept:userInfoURL>
    <adept:activationURL>http://adeactivate.adobe.com/adept</adept:activationURL>
    <adept:certificate>${cert}</adept:certificate>
    <adept:authenticationCertificate>${cert}</adept:authenticationCertificate>
  </adept:activationServiceInfo>
  <adept:credentials xmlns:adept="http://ns.adobe.com/adept">
    <adept:user>urn:uuid:11111111-2222-4333-8444-555555555555</adept:user>
    <adept:username method="anonymous">anonymous</adept:username>
    <adept:pkcs12>${pkcs12}</adept:pkcs12>
    <adept:licenseCertificate>${cert}</adept:licenseCertificate>
    <adept:privateLicenseKey>${cert}</adept:privateLicenseKey>
    <adept:authenticationCertificate>${cert}</adept:authenticationCertificate>
  </adept:credentials>
  <activationToken xmlns="http://ns.adobe.com/adept">
    <device>urn:uuid:66666666-7777-4888-9999-000000000000</device>
    <fingerprint>${fingerprint}</fingerprint>
    <deviceType>standalone</deviceType>
    <activationURL>http://adeactivate.adobe.com/adept</activationURL>
    <user>urn:uuid:11111111-2222-4333-8444-555555555555</user>
    <signature>c2lnbmF0dXJl</signature>
  </activationToken>
</activationInfo>
`;
}

/** A fulfillment token shaped like a shop's; `operatorURL: null` leaves the element out. */
export function token(options: { hmac?: boolean; operatorURL?: string | null } = {}): string {
  const operator = options.operatorURL === undefined ? "http://acs.example-shop.test/fulfillment" : options.operatorURL;
  return `<?xml version="1.0" encoding="UTF-8"?>
<fulfillmentToken fulfillmentType="buy" auth="user" xmlns="http://ns.adobe.com/adept">
  <distributor>urn:uuid:00000000-0000-4000-8000-000000000001</distributor>
${operator === null ? "" : `  <operatorURL>${operator}</operatorURL>\n`}  <transaction>fidelity-0001</transaction>
  <expiration>2099-12-31T23:59:59+00:00</expiration>
  <resourceItemInfo>
    <resource>urn:uuid:7b6b9b8e-3f0a-4c1e-9d51-2a7c1f0e5a10</resource>
    <resourceItem>0</resourceItem>
    <metadata>
      <dc:title xmlns:dc="http://purl.org/dc/elements/1.1/">Der Prozess</dc:title>
      <dc:format xmlns:dc="http://purl.org/dc/elements/1.1/">application/epub+zip</dc:format>
    </metadata>
  </resourceItemInfo>
${options.hmac === false ? "" : "  <hmac>ZmFrZWhtYWNmb3J0ZXN0cw==</hmac>\n"}</fulfillmentToken>
`;
}

function writeLoan(deviceDir: string): void {
  const l = SAMPLE_LOAN;
  mkdirSync(join(deviceDir, "loans"), { recursive: true });
  writeFileSync(
    join(deviceDir, "loans", `${l.file}.xml`),
    `<?xml version="1.0"?>\n<loanToken>\n  <id>${l.id}</id>\n  <operatorURL>${l.operatorURL}</operatorURL>\n` +
      `  <validity>${l.validity}</validity>\n  <name>${l.name}</name>\n</loanToken>\n`,
  );
}

/** The "Exception code / Message" block and the empty line after it (include/libgourou_common.h). */
function exception(code: string, message: string): string[] {
  return [`Exception code : ${code}`, `Message        : ${message}`, ""];
}

/** utils/drmprocessorclientimpl.cpp: five refused connections, then 0x500b. */
const CONNECTION_REFUSED = [
  ...[1, 2, 3, 4, 5].flatMap((n) => ["", `Connection failed, attempt ${n}/5`]),
  ...exception("0x500b", "Error Couldn't connect to server"),
];

const PROMPT = ["!! Warning !! : <tmp>/existing already exists.", "All your data will be overwrite. Would you like to continue ? [y/N] !! Warning !! : <tmp>/existing already exists."];

const LOAN_USAGE_HEAD = ["adept_loan_mgt manage loaned books", "", "Usage: adept_loan_mgt [OPTIONS]"];

export const SCENARIOS: readonly Scenario[] = [
  ...(["acsmdownloader", "adept_activate", "adept_remove", "adept_loan_mgt"] as const).map(
    (tool): Scenario => ({
      name: `${tool} -V`,
      tool,
      setup: () => ["-V"],
      expected: { exit: 0, stdout: ["Current libgourou version : 0.8.7"] },
    }),
  ),
  {
    name: "acsmdownloader, no device files in -D DIR",
    tool: "acsmdownloader",
    setup: (root) => {
      mkdirSync(join(root, "empty"));
      writeFileSync(join(root, "book.acsm"), token());
      return ["-D", join(root, "empty"), "-O", join(root, "out"), "-f", join(root, "book.acsm")];
    },
    expected: {
      exit: 255,
      stdout: ["devicesalt", "device.xml", "activation.xml"].map((f) => `Error : <tmp>/empty/${f} doesn't exists, did you activate your device ?`),
    },
  },
  {
    name: "acsmdownloader, activation.xml fingerprint differs from device.xml (checked before the token)",
    tool: "acsmdownloader",
    setup: (root, kit) => {
      kit.writeDevice(join(root, "device"), { mismatch: true });
      writeFileSync(join(root, "book.acsm"), token().slice(0, 300));
      return ["-D", join(root, "device"), "-O", join(root, "out"), "-f", join(root, "book.acsm")];
    },
    expected: { exit: 1, stdout: exception("0x1000", "User and device fingerprint does not match") },
  },
  {
    name: "acsmdownloader, token not well-formed (cut after 300 bytes)",
    tool: "acsmdownloader",
    setup: (root, kit) => {
      kit.writeDevice(join(root, "device"));
      writeFileSync(join(root, "book.acsm"), token().slice(0, 300));
      return ["-D", join(root, "device"), "-O", join(root, "out"), "-f", join(root, "book.acsm")];
    },
    expected: { exit: 1, stdout: exception("0x1101", "Invalid ACSM file <tmp>/book.acsm") },
  },
  {
    name: "acsmdownloader, token without <hmac>",
    tool: "acsmdownloader",
    setup: (root, kit) => {
      kit.writeDevice(join(root, "device"));
      writeFileSync(join(root, "book.acsm"), token({ hmac: false, operatorURL: null }));
      return ["-D", join(root, "device"), "-O", join(root, "out"), "-f", join(root, "book.acsm")];
    },
    expected: { exit: 1, stdout: exception("0x1102", "hmac tag not found in ACSM file") },
  },
  {
    name: "acsmdownloader, token without <operatorURL> (after signing)",
    tool: "acsmdownloader",
    setup: (root, kit) => {
      kit.writeDevice(join(root, "device"));
      writeFileSync(join(root, "book.acsm"), token({ operatorURL: null }));
      return ["-D", join(root, "device"), "-O", join(root, "out"), join(root, "book.acsm")];
    },
    expected: { exit: 1, stdout: exception("0x1104", "OperatorURL not found in ACSM document") },
  },
  {
    name: "acsmdownloader, valid token with the network down",
    tool: "acsmdownloader",
    setup: (root, kit) => {
      kit.writeDevice(join(root, "device"));
      writeFileSync(join(root, "book.acsm"), token());
      return ["-D", join(root, "device"), "-O", join(root, "out"), join(root, "book.acsm")];
    },
    listFiles: ["."],
    expected: { exit: 1, stdout: CONNECTION_REFUSED, files: ["book.acsm", "device/activation.xml", "device/device.xml", "device/devicesalt"] },
  },
  {
    name: "adept_activate -a -r -O EXISTING with stdin closed",
    tool: "adept_activate",
    setup: (root) => {
      mkdirSync(join(root, "existing"));
      return ["-a", "-r", "-O", "existing"];
    },
    compareLines: 2,
    expected: { exit: "stopped", stdout: PROMPT },
  },
  {
    name: "adept_activate -a -r -O NEW with the network down",
    tool: "adept_activate",
    setup: () => ["-a", "-r", "-O", "new"],
    listFiles: ["."],
    expected: { exit: 1, stdout: CONNECTION_REFUSED, files: ["new/device.xml", "new/devicesalt"] },
  },
  {
    name: "adept_loan_mgt -D DIR -l, no loans",
    tool: "adept_loan_mgt",
    setup: (root, kit) => {
      kit.writeDevice(join(root, "device"));
      return ["-D", join(root, "device"), "-l"];
    },
    expected: { exit: 0, stdout: ["No books loaned"] },
  },
  {
    name: "adept_loan_mgt -D DIR -r 0123456789abcdef (unknown)",
    tool: "adept_loan_mgt",
    setup: (root, kit) => {
      kit.writeDevice(join(root, "device"));
      return ["-D", join(root, "device"), "-r", "0123456789abcdef"];
    },
    expected: { exit: 0, stdout: ["Error : Loan 0123456789abcdef doesn't exists"] },
  },
  {
    name: "adept_loan_mgt -D DIR (list by default) with one loan",
    tool: "adept_loan_mgt",
    setup: (root, kit) => {
      kit.writeDevice(join(root, "device"));
      writeLoan(join(root, "device"));
      return ["-D", join(root, "device")];
    },
    expected: {
      exit: 0,
      stdout: [
        // utils/adept_loan_mgt.cpp, displayLoanList: ID centred in 16 columns, "Book" in the name
        // width (11 bytes rounded up to 12), "Expiration" in 20, four spaces between columns.
        `${" ".repeat(7)}ID${" ".repeat(7)}    ${" ".repeat(4)}Book${" ".repeat(4)}    ${" ".repeat(5)}Expiration${" ".repeat(5)}`,
        "-".repeat(56),
        `${SAMPLE_LOAN.file}    ${SAMPLE_LOAN.name}     ${SAMPLE_LOAN.validity}`,
        "",
      ],
    },
  },
  {
    name: "adept_loan_mgt -d ID",
    tool: "adept_loan_mgt",
    setup: (root, kit) => {
      kit.writeDevice(join(root, "device"));
      writeLoan(join(root, "device"));
      return ["-D", join(root, "device"), "-d", SAMPLE_LOAN.file];
    },
    listFiles: ["device/loans"],
    expected: { exit: 0, stdout: [`Loan ${SAMPLE_LOAN.file} deleted`], files: [] },
  },
  {
    name: "adept_loan_mgt -r ID when the return request fails",
    tool: "adept_loan_mgt",
    setup: (root, kit) => {
      kit.writeDevice(join(root, "device"));
      writeLoan(join(root, "device"));
      return ["-D", join(root, "device"), "-r", SAMPLE_LOAN.file];
    },
    listFiles: ["device/loans"],
    expected: { exit: 1, stdout: CONNECTION_REFUSED, files: [`${SAMPLE_LOAN.file}.xml`] },
  },
  {
    name: "adept_loan_mgt -N (not in its option string)",
    tool: "adept_loan_mgt",
    setup: (root, kit) => {
      kit.writeDevice(join(root, "device"));
      return ["-D", join(root, "device"), "-N", "-l"];
    },
    compareLines: 3,
    expected: { exit: 255, stdout: LOAN_USAGE_HEAD, stderr: ["<bin>/adept_loan_mgt: invalid option -- 'N'"] },
  },
  {
    name: "acsmdownloader, devicesalt of the wrong size",
    tool: "acsmdownloader",
    setup: (root, kit) => {
      kit.writeDevice(join(root, "device"));
      writeFileSync(join(root, "device", "devicesalt"), "short");
      writeFileSync(join(root, "book.acsm"), token());
      return ["-D", join(root, "device"), "-O", join(root, "out"), join(root, "book.acsm")];
    },
    expected: { exit: 1, stdout: exception("0x2003", "Invalid device key file") },
  },
  {
    name: "acsmdownloader, ACSM file missing",
    tool: "acsmdownloader",
    setup: (root, kit) => {
      kit.writeDevice(join(root, "device"));
      return ["-D", join(root, "device"), "-O", join(root, "out"), join(root, "missing.acsm")];
    },
    expected: { exit: 255, stdout: ["Error : <tmp>/missing.acsm doesn't exists"] },
  },
  {
    name: "adept_remove, output name without .epub/.pdf",
    tool: "adept_remove",
    setup: (root, kit) => {
      kit.writeDevice(join(root, "device"));
      writeFileSync(join(root, "book.epub"), "not a book");
      return ["-D", join(root, "device"), "-f", join(root, "book.epub"), "-o", join(root, "book.drm")];
    },
    expected: { exit: 1, stdout: exception("0x6003", "Unsupported file format of <tmp>/book.drm") },
  },
  {
    name: "adept_loan_mgt, a loan entry without <name>",
    tool: "adept_loan_mgt",
    setup: (root, kit) => {
      kit.writeDevice(join(root, "device"));
      mkdirSync(join(root, "device", "loans"));
      writeFileSync(join(root, "device", "loans", "0000000000000000.xml"), "<loanToken><id>x</id><operatorURL>http://a.test</operatorURL><validity>2030-01-01T00:00:00Z</validity></loanToken>");
      return ["-D", join(root, "device"), "-l"];
    },
    expected: { exit: 0, stdout: ["Invalid loan entry 0000000000000000.xml, no name element", "No books loaned"] },
  },
  {
    name: "adept_loan_mgt, no device files in -D DIR",
    tool: "adept_loan_mgt",
    setup: (root) => {
      mkdirSync(join(root, "empty"));
      return ["-D", join(root, "empty")];
    },
    expected: {
      exit: 255,
      stdout: ["devicesalt", "device.xml", "activation.xml"].map((f) => `Error : ${f} doesn't exists, did you activate your device ?`),
    },
  },
];

/** A loopback port nothing listens on (bound, then released). */
export async function closedLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as { port: number };
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

/** Proxy variables libcurl reads, all on the closed port, so nothing leaves the machine. */
export function offlineEnv(port: number): NodeJS.ProcessEnv {
  const proxy = `http://127.0.0.1:${port}`;
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, LANG: "C", http_proxy: proxy, https_proxy: proxy, HTTP_PROXY: proxy, HTTPS_PROXY: proxy, all_proxy: proxy, ALL_PROXY: proxy };
  return env;
}

function listFiles(root: string, under: string): string[] {
  const base = join(root, under);
  if (!existsSync(base)) return [];
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else out.push(relative(base, full));
    }
  };
  walk(base);
  return out.sort();
}

/**
 * Runs `scenario` with the tools in `binDir` in a fresh folder: stdin closed, bounded output and
 * time, `env` as the whole environment (plus HOME pointing into the folder).
 */
export async function runScenario(scenario: Scenario, binDir: string, kit: FixtureKit, env: NodeJS.ProcessEnv): Promise<RunResult> {
  const root = mkdtempSync(join(tmpdir(), "knock-fidelity-"));
  try {
    const args = scenario.setup(root, kit);
    const raw = await new Promise<{ exit: number | "stopped"; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(join(binDir, scenario.tool), args, { cwd: root, env: { ...env, HOME: join(root, "home") }, stdio: ["ignore", "pipe", "pipe"], detached: true });
      const streams = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
      const sizes = { stdout: 0, stderr: 0 };
      let stopped = false;
      const stop = (): void => {
        stopped = true;
        try {
          process.kill(-child.pid!, "SIGKILL");
        } catch {
          // already gone
        }
      };
      const timer = setTimeout(stop, RUN_TIMEOUT_MS);
      for (const name of ["stdout", "stderr"] as const) {
        child[name].on("data", (chunk: Buffer) => {
          if (sizes[name] >= MAX_OUTPUT_BYTES) return;
          streams[name].push(chunk);
          sizes[name] += chunk.length;
          if (sizes[name] >= MAX_OUTPUT_BYTES) stop();
        });
      }
      child.on("error", reject);
      child.on("close", (code) => {
        clearTimeout(timer);
        const text = (name: "stdout" | "stderr") => Buffer.concat(streams[name]).subarray(0, MAX_OUTPUT_BYTES).toString("utf8");
        resolve({ exit: stopped ? "stopped" : (code ?? -1), stdout: text("stdout"), stderr: text("stderr") });
      });
    });
    const normalise = (text: string): string[] => {
      const lines = text.split(root).join("<tmp>").split(binDir.replace(/\/$/, "")).join("<bin>").split("\n");
      if (lines.at(-1) === "") lines.pop();
      return lines;
    };
    const files = scenario.listFiles?.flatMap((under) => listFiles(root, under));
    return { exit: raw.exit, stdout: normalise(raw.stdout), stderr: normalise(raw.stderr), ...(files ? { files } : {}) };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** The part of a result that is compared: stdout cut to `compareLines` where the run is cut off. */
export function comparable(scenario: Scenario, result: RunResult): RunResult {
  const cut = (lines: string[]) => (scenario.compareLines === undefined ? lines : lines.slice(0, scenario.compareLines));
  return { ...result, stdout: cut(result.stdout), stderr: scenario.compareLines === undefined ? result.stderr : result.stderr.slice(0, 1) };
}
