import { writeFile } from "node:fs/promises";
import { createInterface } from "node:readline/promises";
import { Command } from "commander";
import {
  checkDeviceFiles,
  DEVICE_BACKUP_PREFIX,
  DEVICE_FILES,
  DEVICE_OBJECT_KEY,
  DeviceFileProblem,
  deviceBackupKey,
  encodeDevice,
  readDeviceDocument,
  S3Client,
  s3Objects,
  type DeviceDocument,
  type DeviceFiles,
  type DeviceSummary,
  type ObjectStore,
} from "../../lambda/src/public";
import { DeviceArchiveProblem, readDeviceInput, writeDeviceZip } from "../lib/device-archive";
import { CliError } from "../lib/failures";
import { PULUMI_INSTALL_URL, PulumiNotInstalledError, pulumiStackOutput, quietly, regionOfFunctionUrl, type StackOutputReader } from "../lib/service-address";
import { fileObjects } from "../serve/file-objects";
import { lockDataFolder } from "../serve/data-folder";

// `knock device`: the Adobe device the service converts with belongs to its owner, who can see it,
// take it away and bring one. Key material only moves between this machine and the owner's own
// storage (the deployed service's device bucket, with the owner's own AWS credentials, or `knock
// serve`'s data folder, read and written as files), never through the service.

/** What `knock device` reports: public facts only, never devicesalt or the private keys. */
export interface DeviceStatus {
  readonly stored: boolean;
  readonly serial?: string;
  readonly fingerprint?: string;
  readonly account?: "anonymous" | "Adobe ID";
  readonly origin?: "activated" | "imported";
  /** When the stored device was activated or imported (the document's time, else the object's LastModified). */
  readonly since?: string;
  readonly backups: number;
  /** What libgourou would refuse in the stored files, if anything. */
  readonly problem?: string;
}

const DOCUMENT_TYPE = "application/json";

async function loadStored(objects: ObjectStore): Promise<{ document: DeviceDocument; text: string; etag: string } | undefined> {
  const found = await objects.get(DEVICE_OBJECT_KEY);
  if (found === undefined) return undefined;
  const text = found.body.toString("utf8");
  try {
    return { document: readDeviceDocument(text), text, etag: found.etag };
  } catch (err) {
    throw new CliError("input", `The stored device (${DEVICE_OBJECT_KEY}) is unreadable: ${(err as Error).message}.`, {}, { cause: err });
  }
}

/** The stored device's status on `objects` (a device bucket, or a data folder). */
export async function deviceStatus(objects: ObjectStore): Promise<DeviceStatus> {
  const backups = (await objects.list(DEVICE_BACKUP_PREFIX)).length;
  const stored = await loadStored(objects);
  if (stored === undefined) return { stored: false, backups };
  const { document } = stored;
  const head = await objects.head(DEVICE_OBJECT_KEY);
  const since = (document.origin === "imported" ? document.importedAt : document.createdAt) ?? head?.lastModified;
  let summary: DeviceSummary | undefined;
  let problem: string | undefined;
  try {
    summary = checkDeviceFiles(document.files);
  } catch (err) {
    if (!(err instanceof DeviceFileProblem)) throw err;
    problem = err.message;
  }
  return {
    stored: true,
    serial: summary?.serial,
    fingerprint: summary?.fingerprint,
    account: summary === undefined ? undefined : summary.anonymous ? "anonymous" : "Adobe ID",
    origin: document.origin,
    since: since?.toISOString(),
    backups,
    problem,
  };
}

/** The outcome of {@link importDevice}. */
export type ImportOutcome = { readonly stored: "new" | "replaced" | "unchanged"; readonly backup?: string };

/**
 * Stores `files` as the device on `objects` with the handler's conditional rules: a create with
 * If-None-Match: * when none is stored; otherwise, once `confirm` agrees, the old document is kept
 * at its backup key and replaced with If-Match on the version read, so a device that changed in
 * between is never overwritten (then this throws and nothing is replaced).
 */
export async function importDevice(objects: ObjectStore, files: DeviceFiles, confirm: (current: DeviceStatus) => Promise<boolean>, now: Date = new Date()): Promise<ImportOutcome> {
  checkDeviceFiles(files);
  const body = encodeDevice(files, now, "imported");
  const current = await loadStored(objects);
  if (current === undefined) {
    const created = await objects.putIfAbsent(DEVICE_OBJECT_KEY, body, DOCUMENT_TYPE);
    if (created === "exists") throw new CliError("service", "A device was stored while importing; nothing was replaced. Run `knock device` and try again.");
    return { stored: "new" };
  }
  if (DEVICE_FILES.every((name) => current.document.files[name].equals(files[name]))) return { stored: "unchanged" };
  if (!(await confirm(await deviceStatus(objects)))) throw new CliError("usage", "Not replaced: the stored device is unchanged.");
  const backup = deviceBackupKey(current.etag);
  await objects.putIfAbsent(backup, current.text, DOCUMENT_TYPE);
  const outcome = await objects.putIfMatch(DEVICE_OBJECT_KEY, current.etag, body, DOCUMENT_TYPE);
  if (outcome === "changed" || outcome === "absent") {
    throw new CliError("service", `The stored device ${outcome === "changed" ? "changed" : "was removed"} while importing; nothing was replaced. Run \`knock device\` and try again.`);
  }
  return { stored: "replaced", backup };
}

/** Asks on the terminal; anything but y/yes is no. */
async function ask(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } catch {
    return false;
  } finally {
    rl.close();
  }
}

function statusText(where: string, s: DeviceStatus): string {
  if (!s.stored) {
    return `No Adobe device in ${where}: one is activated (anonymously) at the first conversion, or bring yours with \`knock device import\`.${s.backups > 0 ? `\nbackups      ${s.backups}\n` : "\n"}`;
  }
  const lines = [
    `Adobe device in ${where}`,
    `serial       ${s.serial ?? "?"}`,
    `fingerprint  ${s.fingerprint ?? "?"}`,
    `account      ${s.account ?? "?"}`,
    `origin       ${s.origin === "imported" ? "imported" : "activated by the service"}`,
    `${(s.origin === "imported" ? "imported" : "activated").padEnd(13)}${s.since ?? "unknown"}`,
    `backups      ${s.backups === 0 ? "none" : `${s.backups} (in ${DEVICE_BACKUP_PREFIX.slice(0, DEVICE_BACKUP_PREFIX.lastIndexOf("/") + 1)})`}`,
  ];
  if (s.problem !== undefined) lines.push(`problem      ${s.problem}`);
  return lines.join("\n") + "\n";
}

/** Where `knock device` reads and writes the device: a data folder (locked for imports) or a bucket. */
interface DeviceTarget {
  readonly objects: ObjectStore;
  readonly where: string;
  /** Set for a `knock serve` data folder: an import locks it. */
  readonly data?: string;
  /** Set for the deployed service's device bucket. */
  readonly bucket?: string;
}

/** The flags that name the target, given on the command or on `knock device` before the subcommand. */
interface TargetFlags {
  readonly data?: string;
  readonly bucket?: string;
}

const BUCKET_OUTPUT = "pulumi stack output device_credentials_bucket";

/**
 * The device's storage: `--data DIR` (a `knock serve` data folder), else the deployed service's
 * device bucket: `--bucket NAME`, else the stack output `device_credentials_bucket`. The bucket is
 * read and written with the deployer's own AWS credentials, never through the Function URL.
 */
export async function deviceTarget(flags: TargetFlags, readOutput: StackOutputReader = pulumiStackOutput): Promise<DeviceTarget> {
  if (flags.data !== undefined && flags.bucket !== undefined) {
    throw new CliError("usage", "Pass either --data DIR (a knock serve data folder) or --bucket NAME (the deployed service's device bucket), not both.");
  }
  if (flags.data !== undefined) return { objects: fileObjects(flags.data), where: `${flags.data} (knock serve data folder)`, data: flags.data };
  let bucket = flags.bucket?.trim();
  if (flags.bucket !== undefined && !bucket) throw new CliError("usage", "--bucket needs the name of the device bucket.");
  if (bucket === undefined) {
    const pass = "pass --bucket NAME (the deployed service's device bucket) or --data DIR (a knock serve data folder)";
    try {
      bucket = await readOutput("device_credentials_bucket");
    } catch (err) {
      if (!(err instanceof PulumiNotInstalledError)) throw err;
      throw new CliError("usage", `No device bucket: ${pass}; reading the stack's device_credentials_bucket output needs the Pulumi CLI, which is not installed (${PULUMI_INSTALL_URL}).`);
    }
    if (!bucket) throw new CliError("usage", `No device bucket: ${pass}, or run where \`${BUCKET_OUTPUT}\` works (Pulumi CLI logged in, stack selected).`);
  }
  return { objects: bucketObjects(await deviceS3Client(readOutput), bucket), where: `bucket ${bucket} (the deployed service's device)`, bucket };
}

/**
 * An S3 client for the device bucket. The region is the AWS SDK's own default chain (AWS_REGION, the
 * profile's region); when that finds none, the region of the stack's Function URL (the bucket is in
 * the stack's region). Redirects to the bucket's region are followed, so a default region other than
 * the stack's still works. A local S3 server (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, which the SDK
 * reads itself) needs path-style addressing, as in the handler.
 */
async function deviceS3Client(readOutput: StackOutputReader): Promise<S3Client> {
  const local = Boolean(process.env.AWS_ENDPOINT_URL_S3?.trim() || process.env.AWS_ENDPOINT_URL?.trim());
  const options = { followRegionRedirects: true, ...(local ? { forcePathStyle: true } : {}) };
  const client = new S3Client(options);
  try {
    await client.config.region();
    return client;
  } catch (err) {
    client.destroy();
    // The SDK's chain rejects with "Region is missing" when no source has one; anything else is a bad region.
    if (!/region is missing/i.test((err as Error).message)) throw new CliError("usage", `The AWS region is not usable: ${(err as Error).message}. Set AWS_REGION to the stack's region.`, {}, { cause: err });
  }
  const url = await quietly(readOutput)("function_url");
  const region = url !== undefined && URL.canParse(url) ? regionOfFunctionUrl(new URL(url)) : undefined;
  if (region === undefined) {
    throw new CliError("usage", "No AWS region for the device bucket: set AWS_REGION (or a region in your AWS profile) to the region the stack is deployed in.");
  }
  return new S3Client({ ...options, region });
}

/** The IAM action each {@link ObjectStore} request of `knock device` needs (HEAD needs s3:GetObject). */
const ACTION = { get: "s3:GetObject", head: "s3:GetObject", put: "s3:PutObject", list: "s3:ListBucket", delete: "s3:DeleteObject" } as const;

/** The device bucket's objects with the handler's own S3 rules, and every AWS failure as a {@link CliError}. */
function bucketObjects(s3: S3Client, bucket: string): ObjectStore {
  const objects = s3Objects(s3, bucket);
  const guard =
    <A extends unknown[], R>(action: string, request: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      try {
        return await request(...args);
      } catch (err) {
        throw bucketFailure(err, bucket, action);
      }
    };
  return {
    get: guard(ACTION.get, objects.get),
    head: guard(ACTION.head, objects.head),
    put: guard(ACTION.put, objects.put),
    putIfAbsent: guard(ACTION.put, objects.putIfAbsent),
    putIfMatch: guard(ACTION.put, objects.putIfMatch),
    deleteIfMatch: guard(ACTION.delete, objects.deleteIfMatch),
    delete: guard(ACTION.delete, objects.delete),
    list: guard(ACTION.list, objects.list),
    upload: guard(ACTION.put, objects.upload),
    presignGet: guard(ACTION.get, objects.presignGet),
  };
}

/**
 * What the user can do about a failed request on the device bucket: the credential chain found
 * nothing or AWS refused the credentials; the identity lacks the action on the bucket (S3's 403
 * AccessDenied; a HEAD answers a bare 403); the bucket does not exist (404 NoSuchBucket); S3 cannot
 * be reached. Never a stack trace: the cause is kept for --debug.
 */
export function bucketFailure(err: unknown, bucket: string, action: string): unknown {
  if (err instanceof CliError) return err;
  const e = err as { name?: string; message?: string; code?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  const name = e?.name ?? "";
  const detail = (e?.message ?? String(err)).split("\n")[0];
  const status = e?.$metadata?.httpStatusCode;
  const signIn = "Sign in (e.g. `aws sso login`), set AWS_PROFILE, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: knock device uses your own AWS credentials.";
  if (name === "CredentialsProviderError") {
    const expired = /expired|refresh/i.test(detail);
    return new CliError(
      expired ? "credentials-expired" : "credentials",
      `${expired ? "Your AWS credentials have expired" : "No AWS credentials found"} for the device bucket ${bucket}: ${detail}\n  ${signIn}`,
      {},
      { cause: err },
    );
  }
  if (/^(ExpiredToken|ExpiredTokenException|TokenRefreshRequired|RequestExpired)$/.test(name)) {
    return new CliError("credentials-expired", `Your AWS credentials have expired (${name} on the device bucket ${bucket}).\n  ${signIn}`, {}, { cause: err });
  }
  if (/^(InvalidAccessKeyId|SignatureDoesNotMatch|InvalidToken|InvalidClientTokenId)$/.test(name)) {
    return new CliError("credentials", `AWS refused your credentials on the device bucket ${bucket} (${name}: ${detail}).\n  ${signIn}`, {}, { cause: err });
  }
  if (name === "AccessDenied" || status === 403) {
    return new CliError(
      "access-denied",
      `Access denied: your AWS identity may not ${action} on the device bucket ${bucket}.\n` +
        `  knock device needs s3:GetObject, s3:PutObject and s3:ListBucket on arn:aws:s3:::${bucket} and arn:aws:s3:::${bucket}/*.`,
      { errorType: name || undefined, status },
      { cause: err },
    );
  }
  if (name === "NoSuchBucket") {
    return new CliError("input", `The device bucket ${bucket} does not exist: check --bucket, or the stack's \`${BUCKET_OUTPUT}\`.`, { errorType: name, status }, { cause: err });
  }
  if (name === "PermanentRedirect" || name === "AuthorizationHeaderMalformed") {
    return new CliError("usage", `The device bucket ${bucket} is in another region (${name}): set AWS_REGION to the stack's region.`, { errorType: name, status }, { cause: err });
  }
  if (status === undefined) {
    const code = e?.code ?? name;
    if (!/^(ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|TimeoutError)$/.test(code)) return err;
    return new CliError("network", `Cannot reach S3 for the device bucket ${bucket} (${code}: ${detail}): check this machine's network.`, {}, { cause: err });
  }
  return new CliError("service", `S3 refused ${action} on the device bucket ${bucket}: ${name || `HTTP ${status}`}: ${detail}`, { errorType: name || undefined, status }, { cause: err });
}

function inputProblem(err: unknown): never {
  if (err instanceof DeviceArchiveProblem || err instanceof DeviceFileProblem) throw new CliError("input", `Not imported: ${err.message}. Nothing was replaced.`, {}, { cause: err });
  throw err;
}

/** The target flags of a subcommand, with those given to `knock device` itself (`knock device --bucket B export f.zip`). */
function targetFlags(opts: TargetFlags, sub: Command): TargetFlags {
  const parent = (sub.parent?.opts() ?? {}) as TargetFlags;
  return { data: opts.data ?? parent.data, bucket: opts.bucket ?? parent.bucket };
}

const BUCKET_HELP = "the deployed service's device bucket (default: `pulumi stack output device_credentials_bucket`), with your AWS credentials";

/** `knock device`: the Adobe device's status, and its export and import. */
export function deviceCommand(): Command {
  const command = new Command("device")
    .description("Show the Adobe device the service converts with (no key material); export it or import your own")
    .option("--bucket <name>", BUCKET_HELP)
    .option("--data <dir>", "the data folder of `knock serve` whose device to use (instead of the bucket)")
    .option("--json", "print the status as JSON on stdout")
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  $ npx knock device                                   # the deployed service's device\n" +
        "  $ npx knock device export adobe-device.zip\n" +
        "  $ npx knock device import adobe-device.zip --bucket my-device-bucket --yes\n" +
        "  $ npx knock device --data .knock                     # knock serve's device\n" +
        "  $ npx knock device import ~/.config/adept --data .knock\n",
    )
    .action(async (opts: TargetFlags & { json?: boolean }) => {
      const { objects, where } = await deviceTarget(opts);
      const status = await deviceStatus(objects);
      process.stdout.write(opts.json ? JSON.stringify(status) + "\n" : statusText(where, status));
    });

  command
    .command("export")
    .description("Write the device as a zip of libgourou's device.xml, activation.xml and devicesalt (holds the private keys: keep it safe)")
    .argument("<file>", "the zip to write (refused if it exists, unless --force)")
    .option("--bucket <name>", BUCKET_HELP)
    .option("--data <dir>", "the data folder of `knock serve` whose device to export")
    .option("--force", "overwrite FILE if it exists")
    .action(async (file: string, opts: TargetFlags & { force?: boolean }, sub: Command) => {
      const { objects, where } = await deviceTarget(targetFlags(opts, sub));
      const stored = await loadStored(objects);
      if (stored === undefined) {
        // A missing bucket reads as a missing object (S3's GET answers 404 for both): the listing tells them apart.
        await objects.list(DEVICE_OBJECT_KEY);
        throw new CliError("input", `No Adobe device in ${where}: nothing to export.`);
      }
      const zip = await writeDeviceZip(stored.document.files);
      try {
        await writeFile(file, zip, { flag: opts.force ? "w" : "wx", mode: 0o600 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "EEXIST") throw new CliError("output-folder", `${file} exists: pass --force to overwrite it, or name another file.`);
        throw new CliError("output-folder", `Cannot write ${file}: ${(err as Error).message}.`, {}, { cause: err });
      }
      const summary = checkDeviceFiles(stored.document.files);
      process.stderr.write(`Exported device ${summary.serial} from ${where} to ${file} (it holds the device's private keys: keep it safe).\n`);
    });

  command
    .command("import")
    .description("Store a device (a zip or a folder with device.xml, activation.xml, devicesalt); the old one is kept as a backup")
    .argument("<source>", "the zip or folder to import")
    .option("--bucket <name>", BUCKET_HELP)
    .option("--data <dir>", "the data folder of `knock serve` to import into (knock serve must not be running on it)")
    .option("-y, --yes", "replace a stored device without asking (needed when not on a terminal)")
    .action(async (source: string, opts: TargetFlags & { yes?: boolean }, sub: Command) => {
      const target = await deviceTarget(targetFlags(opts, sub));
      let files: DeviceFiles;
      let summary: DeviceSummary;
      try {
        files = await readDeviceInput(source);
        summary = checkDeviceFiles(files);
      } catch (err) {
        inputProblem(err);
      }
      // A data folder is locked against a running knock serve; a bucket needs no lock: the
      // conditional writes (If-None-Match, If-Match) keep a racing cold start's device.
      let unlock: () => Promise<void> = async () => undefined;
      if (target.data !== undefined) {
        try {
          unlock = await lockDataFolder(target.data);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "EDATALOCKED") throw new CliError("usage", `${(err as Error).message}: stop it before importing a device.`);
          throw err;
        }
      }
      try {
        const outcome = await importDevice(target.objects, files, async (current) => {
          if (opts.yes) return true;
          if (process.stdin.isTTY !== true) {
            throw new CliError("usage", `${target.where} already holds device ${current.serial ?? "?"}; replacing it needs confirmation and there is no terminal to ask on: pass --yes.`);
          }
          return ask(`Replace device ${current.serial ?? "?"} (${current.origin}) with ${summary.serial}? The old one is kept as a backup. [y/N] `);
        });
        if (outcome.stored === "unchanged") process.stderr.write(`Device ${summary.serial} is already the stored one; nothing changed.\n`);
        else if (outcome.stored === "new") process.stderr.write(`Imported device ${summary.serial} into ${target.where}.\n`);
        else process.stderr.write(`Imported device ${summary.serial} into ${target.where}; the old one is kept as ${outcome.backup}.\n`);
      } finally {
        await unlock();
      }
    });
  // main.ts sets these on the commands it registers; subcommands made before that need their own.
  for (const sub of command.commands) sub.exitOverride().showHelpAfterError("(run with --help for usage)");
  return command;
}
