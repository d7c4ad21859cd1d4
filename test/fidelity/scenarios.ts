// The scenarios the libgourou stand-in is held to: each sets up a folder, runs one tool, and states
// what libgourou 0.8.9 prints — the release lambda/Dockerfile pins (see
// test/fixtures/libgourou/libgourou-standin for the source files each behaviour comes from). The
// lines were observed offline with real tools built by the image's `tools` stage, with every proxy
// variable on a closed loopback port, or, where a scenario says so, on a loopback proxy that
// records the request lines and answers as the scenario tells it. Those 0.8.9 tools were built from
// an offline reconstruction (the 0.8.7 tree that loganpowell/knock-cmake vendors, with the 0.8.9
// files that chrisvariety/acsm-converter stores laid over it), not from upstream's tree.
// test/fixtures/standin.test.ts runs the scenarios against the stand-in alone; test/fidelity/run.ts
// runs them against the real tools as well and compares the two.
import { execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
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
  /** The request lines the scenario's proxy received, in order, when it has one. */
  readonly requests?: string[];
}

/**
 * How a scenario's loopback proxy answers a request line (`POST http://host/path HTTP/1.1` for an
 * http: URL, `CONNECT host:443 HTTP/1.1` for an https: one — libcurl's forms through a proxy): the
 * HTTP status it sends back. A CONNECT must be refused (>= 300): nothing here speaks TLS.
 */
export type ProxyAnswer = (requestLine: string) => number;

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
  /** Point every proxy variable at a loopback proxy that answers so (else at a closed port). */
  readonly proxy?: ProxyAnswer;
  /**
   * Why the stand-in is not held to this scenario (it does not model that check): run.ts then
   * judges only the real tools, against `expected`.
   */
  readonly realOnly?: string;
  /** The lines libgourou 0.8.9 prints (stdout), exit status and, where listed, the files and the proxy's request lines. */
  readonly expected: { exit: number | "stopped"; stdout: string[]; stderr?: string[]; files?: string[]; requests?: string[] };
}

/** Where a device's activation.xml sends /Activate and /InitLicenseService (src/user.cpp, createUser). */
export const ACTIVATION_SERVER = {
  /** What 0.8.9 writes (include/libgourou.h, ACS_SERVER). */
  v089: "https://adeactivate.adobe.com/adept",
  /** What 0.8.7 wrote, so what a device it activated still holds. */
  v087: "http://adeactivate.adobe.com/adept",
} as const;

/** Shared material: one valid device (with a PKCS#12 the real tools can sign with). */
export interface FixtureKit {
  /**
   * Writes a complete device into `dir`. `mismatch` gives activation.xml another fingerprint;
   * `activationServer` is its <adept:activationURL> (default: 0.8.9's), `null` leaves it out.
   */
  writeDevice(dir: string, options?: { mismatch?: boolean; activationServer?: string | null }): void;
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
        const server = options.activationServer === undefined ? ACTIVATION_SERVER.v089 : options.activationServer;
        writeFileSync(join(dir, "activation.xml"), activationXml(pkcs12, cert, options.mismatch ? otherFingerprint : fingerprint, server));
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

/**
 * activation.xml with every element User::parseActivationFile (src/user.cpp) requires, laid out as
 * createUser, signIn and activateDevice (src/libgourou.cpp) write it; `activationServer` is the
 * <adept:activationURL> createUser stores (its ACS server), null for none.
 */
function activationXml(pkcs12: string, cert: string, fingerprint: string, activationServer: string | null): string {
  const activationURL = activationServer === null ? "" : `\n    <adept:activationURL>${activationServer}</adept:activationURL>`;
  return `<?xml version="1.0"?>
<activationInfo xmlns="http://ns.adobe.com/adept">
  <adept:activationServiceInfo xmlns:adept="http://ns.adobe.com/adept">
    <adept:authURL>https://adeactivate.adobe.com/adept</adept:authURL>
    <adept:userInfoURL>https://adeactivate.adobe.com/adept</adept:userInfoURL>${activationURL}
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
    <activationURL>https://adeactivate.adobe.com/adept</activationURL>
    <user>urn:uuid:11111111-2222-4333-8444-555555555555</user>
    <signature>c2lnbmF0dXJl</signature>
  </activationToken>
</activationInfo>
`;
}

/** A fulfillment token shaped like a shop's; `operatorURL: null` leaves the element out. */
export function token(options: { hmac?: boolean; operatorURL?: string | null; expiration?: string } = {}): string {
  const operator = options.operatorURL === undefined ? "http://acs.example-shop.test/fulfillment" : options.operatorURL;
  return `<?xml version="1.0" encoding="UTF-8"?>
<fulfillmentToken fulfillmentType="buy" auth="user" xmlns="http://ns.adobe.com/adept">
  <distributor>urn:uuid:00000000-0000-4000-8000-000000000001</distributor>
${operator === null ? "" : `  <operatorURL>${operator}</operatorURL>\n`}  <transaction>fidelity-0001</transaction>
  <expiration>${options.expiration ?? "2099-12-31T23:59:59+00:00"}</expiration>
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
export function exception(code: string, message: string): string[] {
  return [`Exception code : ${code}`, `Message        : ${message}`, ""];
}

/** utils/drmprocessorclientimpl.cpp: five refused connections, then 0x500b. */
export const CONNECTION_REFUSED = [
  ...[1, 2, 3, 4, 5].flatMap((n) => ["", `Connection failed, attempt ${n}/5`]),
  ...exception("0x500b", "Error Couldn't connect to server"),
];

const PROMPT = ["!! Warning !! : <tmp>/existing already exists.", "All your data will be overwrite. Would you like to continue ? [y/N] !! Warning !! : <tmp>/existing already exists."];

/** The help's "Environment" lines that list where the device files are looked for (utils/*.cpp, usage()). */
const LOOKED_INTO = ["  * $ADEPT_DIR environment variable", "  * /home/<user>/.config/adept", "  * Current directory", "  * .adept", "  * adobe-digital-editions directory", "  * .adobe-digital-editions directory"];

/** The device options of acsmdownloader's and adept_remove's help. */
const ADEPT_FILE_OPTIONS = [
  "ADEPT Options:",
  "  -D|--adept-directory\t.adept directory that must contains device.xml, activation.xml and devicesalt",
  "  -d|--device-file\tdevice.xml file from eReader",
  "  -a|--activation-file\tactivation.xml file from eReader",
  "  -k|--device-key-file\tprivate device key file (eg devicesalt/devkey.bin) from eReader",
  "",
  "Environment:",
];

/** utils/acsmdownloader.cpp, usage() (0.8.9 marks -O and -o as not compatible). */
const DOWNLOADER_HELP = [
  "acsmdownloader download EPUB file from ACSM request file",
  "",
  "Usage: acsmdownloader [OPTIONS] file.acsm",
  "",
  "Global Options:",
  "  -O|--output-dir\tOptional output directory were to put result (default ./) (not compatible with -o)",
  "  -o|--output-file\tOptional output filename (default <title.(epub|pdf|der)>) (not compatible with -O)",
  "  -f|--acsm-file\tBackward compatibility: ACSM request file for epub download",
  "  -e|--export-private-key\tExport private key in DER format",
  "  -r|--resume\t\tTry to resume download (in case of previous failure)",
  "  -N|--no-notify\t\tDon't notify server, even if requested",
  "  -v|--verbose\t\tIncrease verbosity, can be set multiple times",
  "  -V|--version\t\tDisplay libgourou version",
  "  -h|--help\t\tThis help",
  ...ADEPT_FILE_OPTIONS,
  "Device file, activation file and device key file are optionals. If not set, they are looked into :",
  "",
  ...LOOKED_INTO,
];

/** utils/adept_remove.cpp, usage(). */
const REMOVE_HELP = [
  "adept_remove remove ADEPT DRM (from Adobe) of EPUB/PDF file",
  "",
  "Usage: adept_remove [OPTIONS] file(.epub|pdf)",
  "",
  "Global Options:",
  "  -O|--output-dir\tOptional output directory were to put result (default ./) (not compatible with -o)",
  "  -o|--output-file\tOptional output filename (default inplace DRM removal>) (not compatible with -O)",
  "  -f|--input-file\tBackward compatibility: EPUB/PDF file to process",
  "  -v|--verbose\t\tIncrease verbosity, can be set multiple times",
  "  -V|--version\t\tDisplay libgourou version",
  "  -h|--help\t\tThis help",
  ...ADEPT_FILE_OPTIONS,
  "Device file, activation file and device key file are optionals. If not set, they are looked into :",
  ...LOOKED_INTO,
];

/** utils/adept_loan_mgt.cpp, usage() (commit 324c566 "Fix help of adept_load_mgt": one tab after -N). */
const LOAN_HELP = [
  "adept_loan_mgt manage loaned books",
  "",
  "Usage: adept_loan_mgt [OPTIONS]",
  "",
  "Global Options:",
  "  -l|--list\t\tList all loaned books",
  "  -r|--return\t\tReturn a loaned book",
  "  -d|--delete\t\tDelete a loan entry without returning it",
  "  -N|--no-notify\tDon't notify server, even if requested",
  "  -v|--verbose\t\tIncrease verbosity, can be set multiple times",
  "  -V|--version\t\tDisplay libgourou version",
  "  -h|--help\t\tThis help",
  "ADEPT Options:",
  "  -D|--adept-directory\t.adept directory that must contains device.xml, activation.xml and devicesalt",
  "",
  "Environment:",
  "ADEPT directory is optional. If not set, it's looked into :",
  ...LOOKED_INTO,
];

/** utils/acsmdownloader.cpp and utils/adept_remove.cpp, main() (0.8.9): before the device files are looked for. */
const BOTH_O_AND_DIR = ["Error : you cannot use both -o and -O"];

/** A token whose <expiration> has long passed (DRMProcessor::fulfill warns and goes on). */
const EXPIRED = "2001-01-01T00:00:00+00:00";
const EXPIRED_WARNING = `WARNING: ACSM file expired (${EXPIRED}), It may not work.`;

/** A CONNECT refused by the proxy, as libcurl reports it: five attempts, then 0x500b (utils/drmprocessorclientimpl.cpp). */
export const TUNNEL_REFUSED = [
  ...[1, 2, 3, 4, 5].flatMap((n) => ["", `Connection broken and no data received, attempt ${n}/5`]),
  ...exception("0x500b", "Error Failure when receiving data from the peer"),
];

/**
 * A proxy that lets the operator's /Auth through (an empty 200, which is no ADEPT <error>) and
 * answers everything else 502 or, for a CONNECT, 403: the run stops at the request after /Auth.
 */
const AUTH_THEN_REFUSE: ProxyAnswer = (line) => (line.startsWith("CONNECT ") ? 403 : / \S+\/Auth HTTP\//.test(line) ? 200 : 502);
const AUTH_REQUEST = "POST http://acs.example-shop.test/fulfillment/Auth HTTP/1.1";

export const SCENARIOS: readonly Scenario[] = [
  ...(["acsmdownloader", "adept_activate", "adept_remove", "adept_loan_mgt"] as const).map(
    (tool): Scenario => ({
      name: `${tool} -V`,
      tool,
      setup: () => ["-V"],
      expected: { exit: 0, stdout: ["Current libgourou version : 0.8.9"] },
    }),
  ),
  ...([
    ["acsmdownloader", DOWNLOADER_HELP],
    ["adept_remove", REMOVE_HELP],
    ["adept_loan_mgt", LOAN_HELP],
  ] as const).map(
    ([tool, help]): Scenario => ({
      name: `${tool} -h`,
      tool,
      setup: () => ["-h"],
      expected: { exit: 0, stdout: [...help] },
    }),
  ),
  {
    name: "acsmdownloader -O DIR -o FILE: refused before the device files are looked for",
    tool: "acsmdownloader",
    setup: (root) => {
      mkdirSync(join(root, "empty"));
      writeFileSync(join(root, "book.acsm"), token());
      return ["-D", join(root, "empty"), "-O", join(root, "out"), "-o", join(root, "out", "book.epub"), join(root, "book.acsm")];
    },
    listFiles: ["."],
    expected: { exit: 255, stdout: BOTH_O_AND_DIR, files: ["book.acsm"] },
  },
  {
    name: "adept_remove -O DIR -o FILE: refused before the device files are looked for",
    tool: "adept_remove",
    setup: (root) => {
      mkdirSync(join(root, "empty"));
      writeFileSync(join(root, "book.epub"), "not a book");
      return ["-D", join(root, "empty"), "-O", join(root, "out"), "-o", join(root, "out", "book.epub"), "-f", join(root, "book.epub")];
    },
    listFiles: ["."],
    expected: { exit: 255, stdout: BOTH_O_AND_DIR, files: ["book.epub"] },
  },
  {
    name: "acsmdownloader, expired token: warns, then goes on to the network (down)",
    tool: "acsmdownloader",
    setup: (root, kit) => {
      kit.writeDevice(join(root, "device"));
      writeFileSync(join(root, "book.acsm"), token({ expiration: EXPIRED }));
      return ["-D", join(root, "device"), "-O", join(root, "out"), join(root, "book.acsm")];
    },
    expected: { exit: 1, stdout: [EXPIRED_WARNING, ...CONNECTION_REFUSED] },
  },
  {
    name: "acsmdownloader, expired token without <hmac>: the warning comes before the hmac check",
    tool: "acsmdownloader",
    setup: (root, kit) => {
      kit.writeDevice(join(root, "device"));
      writeFileSync(join(root, "book.acsm"), token({ expiration: EXPIRED, hmac: false }));
      return ["-D", join(root, "device"), "-O", join(root, "out"), join(root, "book.acsm")];
    },
    expected: { exit: 1, stdout: [EXPIRED_WARNING, ...exception("0x1102", "hmac tag not found in ACSM file")] },
  },
  {
    name: "acsmdownloader, device activated by 0.8.7: /InitLicenseService goes to its stored http:// activationURL",
    tool: "acsmdownloader",
    setup: (root, kit) => {
      kit.writeDevice(join(root, "device"), { activationServer: ACTIVATION_SERVER.v087 });
      writeFileSync(join(root, "book.acsm"), token());
      return ["-D", join(root, "device"), "-O", join(root, "out"), join(root, "book.acsm")];
    },
    proxy: AUTH_THEN_REFUSE,
    expected: {
      exit: 1,
      stdout: exception("0x5011", "HTTP Error code 502"),
      requests: [AUTH_REQUEST, "POST http://adeactivate.adobe.com/adept/InitLicenseService HTTP/1.1"],
    },
  },
  {
    name: "acsmdownloader, device activated by 0.8.9: /InitLicenseService goes to https:// (a CONNECT)",
    tool: "acsmdownloader",
    setup: (root, kit) => {
      kit.writeDevice(join(root, "device"), { activationServer: ACTIVATION_SERVER.v089 });
      writeFileSync(join(root, "book.acsm"), token());
      return ["-D", join(root, "device"), "-O", join(root, "out"), join(root, "book.acsm")];
    },
    proxy: AUTH_THEN_REFUSE,
    expected: { exit: 1, stdout: TUNNEL_REFUSED, requests: [AUTH_REQUEST, ...Array<string>(5).fill("CONNECT adeactivate.adobe.com:443 HTTP/1.1")] },
  },
  {
    name: "acsmdownloader, activation.xml without <adept:activationURL>: fails after /Auth",
    tool: "acsmdownloader",
    setup: (root, kit) => {
      kit.writeDevice(join(root, "device"), { activationServer: null });
      writeFileSync(join(root, "book.acsm"), token());
      return ["-D", join(root, "device"), "-O", join(root, "out"), join(root, "book.acsm")];
    },
    proxy: AUTH_THEN_REFUSE,
    expected: { exit: 1, stdout: exception("0x3003", "Property //adept:activationURL not found in activation.xml"), requests: [AUTH_REQUEST] },
  },
  {
    name: "adept_activate -a -r -O NEW: the activation server is https:// (a CONNECT, refused)",
    tool: "adept_activate",
    setup: () => ["-a", "-r", "-O", "new"],
    proxy: () => 403,
    listFiles: ["."],
    expected: { exit: 1, stdout: TUNNEL_REFUSED, files: ["new/device.xml", "new/devicesalt"], requests: Array<string>(5).fill("CONNECT adeactivate.adobe.com:443 HTTP/1.1") },
  },
  {
    name: "adept_remove -o into missing folders: they are made, the input copied there, then the DRM removal fails",
    tool: "adept_remove",
    setup: (root, kit) => {
      kit.writeDevice(join(root, "device"));
      writeFileSync(join(root, "book.epub"), "not a book");
      return ["-D", join(root, "device"), "-f", join(root, "book.epub"), "-o", join(root, "new", "sub", "book.epub")];
    },
    listFiles: ["."],
    expected: {
      exit: 1,
      stdout: exception("0x5008", "Invalid zip file <tmp>/new/sub/book.epub"),
      files: ["book.epub", "device/activation.xml", "device/device.xml", "device/devicesalt", "new/sub/book.epub"],
    },
  },
  {
    name: "adept_remove, a .pdf that is no PDF: uPDFParser's exception, the copy stays",
    tool: "adept_remove",
    setup: (root, kit) => {
      kit.writeDevice(join(root, "device"));
      writeFileSync(join(root, "book.pdf"), "not a book");
      return ["-D", join(root, "device"), "-f", join(root, "book.pdf"), "-o", join(root, "clear.pdf")];
    },
    listFiles: ["."],
    expected: {
      exit: 1,
      stdout: ["Exception code : 0x3", "Message        : Invalid PDF header", "File           : src/uPDFParser.cpp:298", ""],
      files: ["book.pdf", "clear.pdf", "device/activation.xml", "device/device.xml", "device/devicesalt"],
    },
  },
  {
    name: "adept_remove, input missing: an empty copy, then 0x5008 for it",
    tool: "adept_remove",
    setup: (root, kit) => {
      kit.writeDevice(join(root, "device"));
      return ["-D", join(root, "device"), "-f", join(root, "missing.epub"), "-o", join(root, "clear.epub")];
    },
    listFiles: ["."],
    expected: {
      exit: 1,
      stdout: exception("0x5008", "Invalid zip file <tmp>/clear.epub"),
      files: ["clear.epub", "device/activation.xml", "device/device.xml", "device/devicesalt"],
    },
  },
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
    name: "adept_loan_mgt -N -l (0.8.9 accepts -N)",
    tool: "adept_loan_mgt",
    setup: (root, kit) => {
      kit.writeDevice(join(root, "device"));
      return ["-D", join(root, "device"), "-N", "-l"];
    },
    expected: { exit: 0, stdout: ["No books loaned"] },
  },
  {
    name: "adept_loan_mgt -X (an option it does not know)",
    tool: "adept_loan_mgt",
    setup: (root, kit) => {
      kit.writeDevice(join(root, "device"));
      return ["-D", join(root, "device"), "-X", "-l"];
    },
    compareLines: 3,
    expected: { exit: 255, stdout: LOAN_HELP.slice(0, 3), stderr: ["<bin>/adept_loan_mgt: invalid option -- 'X'"] },
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

/** A loopback HTTP proxy that records each request line and answers it as told (see {@link ProxyAnswer}). */
interface RecordingProxy {
  readonly port: number;
  readonly requests: string[];
  close(): Promise<void>;
}

/**
 * Starts a {@link RecordingProxy}. It reads a request's head and, when the head announces one,
 * its body (libcurl sends both before it reads the answer), then answers and closes the
 * connection. A connection that sends nothing (the stand-in's reachability probe) leaves no line.
 */
export async function startRecordingProxy(answer: ProxyAnswer): Promise<RecordingProxy> {
  const requests: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    let received = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const headEnd = received.indexOf("\r\n\r\n");
      if (headEnd < 0) return;
      const head = received.subarray(0, headEnd).toString("latin1");
      const length = Number(/^content-length:\s*(\d+)/im.exec(head)?.[1] ?? 0);
      if (received.length - headEnd - 4 < length) return;
      socket.removeAllListeners("data");
      const line = head.split("\r\n")[0];
      requests.push(line);
      const status = answer(line);
      const body = status === 200 && !line.startsWith("CONNECT ") ? "<ok/>\n" : "";
      socket.end(
        `HTTP/1.1 ${status} ${status === 200 ? "OK" : "Refused"}\r\nContent-Type: application/vnd.adobe.adept+xml\r\n` +
          `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      );
    });
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  return {
    port: (server.address() as { port: number }).port,
    requests,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
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
 * time, `env` as the whole environment (plus HOME pointing into the folder, and the proxy
 * variables pointing at the scenario's own proxy when it has one).
 */
export async function runScenario(scenario: Scenario, binDir: string, kit: FixtureKit, env: NodeJS.ProcessEnv): Promise<RunResult> {
  const root = mkdtempSync(join(tmpdir(), "knock-fidelity-"));
  const proxy = scenario.proxy ? await startRecordingProxy(scenario.proxy) : undefined;
  if (proxy) env = { ...env, ...offlineEnv(proxy.port) };
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
    return {
      exit: raw.exit,
      stdout: normalise(raw.stdout),
      stderr: normalise(raw.stderr),
      ...(files ? { files } : {}),
      ...(proxy ? { requests: [...proxy.requests] } : {}),
    };
  } finally {
    await proxy?.close();
    rmSync(root, { recursive: true, force: true });
  }
}

/** The part of a result that is compared: stdout cut to `compareLines` where the run is cut off. */
export function comparable(scenario: Scenario, result: RunResult): RunResult {
  const cut = (lines: string[]) => (scenario.compareLines === undefined ? lines : lines.slice(0, scenario.compareLines));
  return { ...result, stdout: cut(result.stdout), stderr: scenario.compareLines === undefined ? result.stderr : result.stderr.slice(0, 1) };
}
