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
  type DeviceDocument,
  type DeviceFiles,
  type DeviceSummary,
  type ObjectStore,
} from "../../lambda/src/public";
import { DeviceArchiveProblem, readDeviceInput, writeDeviceZip } from "../lib/device-archive";
import { CliError } from "../lib/failures";
import { fileObjects } from "../serve/file-objects";
import { lockDataFolder } from "../serve/data-folder";

// `knock device`: the Adobe device the service converts with belongs to its owner, who can see it,
// take it away and bring one. Key material only moves between this machine and the owner's own
// storage (here: `knock serve`'s data folder, read and written as files), never through the service.

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

function dataObjects(data: string | undefined): { objects: ObjectStore; where: string; data: string } {
  if (data === undefined) {
    throw new CliError("usage", "Pass --data DIR, the data folder of `knock serve` (its default is .knock); the deployed service's device bucket is not supported yet.");
  }
  return { objects: fileObjects(data), where: `${data} (knock serve data folder)`, data };
}

function inputProblem(err: unknown): never {
  if (err instanceof DeviceArchiveProblem || err instanceof DeviceFileProblem) throw new CliError("input", `Not imported: ${err.message}. Nothing was replaced.`, {}, { cause: err });
  throw err;
}

/** `knock device`: the Adobe device's status, and its export and import. */
export function deviceCommand(): Command {
  const command = new Command("device")
    .description("Show the Adobe device the service converts with (no key material); export it or import your own")
    .option("--data <dir>", "the data folder of `knock serve` whose device to use")
    .option("--json", "print the status as JSON on stdout")
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  $ npx knock device --data .knock\n" +
        "  $ npx knock device export adobe-device.zip --data .knock\n" +
        "  $ npx knock device import adobe-device.zip --data ~/other-knock --yes\n" +
        "  $ npx knock device import ~/.config/adept --data .knock\n",
    )
    .action(async (opts: { data?: string; json?: boolean }) => {
      const { objects, where } = dataObjects(opts.data);
      const status = await deviceStatus(objects);
      process.stdout.write(opts.json ? JSON.stringify(status) + "\n" : statusText(where, status));
    });

  command
    .command("export")
    .description("Write the device as a zip of libgourou's device.xml, activation.xml and devicesalt (holds the private keys: keep it safe)")
    .argument("<file>", "the zip to write (refused if it exists, unless --force)")
    .option("--data <dir>", "the data folder of `knock serve` whose device to export")
    .option("--force", "overwrite FILE if it exists")
    .action(async (file: string, opts: { data?: string; force?: boolean }, sub: Command) => {
      const { objects, where } = dataObjects(opts.data ?? (sub.parent?.opts() as { data?: string }).data);
      const stored = await loadStored(objects);
      if (stored === undefined) throw new CliError("input", `No Adobe device in ${where}: nothing to export.`);
      try {
        await writeFile(file, await writeDeviceZip(stored.document.files), { flag: opts.force ? "w" : "wx", mode: 0o600 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "EEXIST") throw new CliError("output-folder", `${file} exists: pass --force to overwrite it, or name another file.`);
        throw new CliError("output-folder", `Cannot write ${file}: ${(err as Error).message}.`, {}, { cause: err });
      }
      const summary = checkDeviceFiles(stored.document.files);
      process.stderr.write(`Exported device ${summary.serial} to ${file} (it holds the device's private keys: keep it safe).\n`);
    });

  command
    .command("import")
    .description("Store a device (a zip or a folder with device.xml, activation.xml, devicesalt); the old one is kept as a backup")
    .argument("<source>", "the zip or folder to import")
    .option("--data <dir>", "the data folder of `knock serve` to import into (knock serve must not be running on it)")
    .option("-y, --yes", "replace a stored device without asking (needed when not on a terminal)")
    .action(async (source: string, opts: { data?: string; yes?: boolean }, sub: Command) => {
      const target = dataObjects(opts.data ?? (sub.parent?.opts() as { data?: string }).data);
      let files: DeviceFiles;
      let summary: DeviceSummary;
      try {
        files = await readDeviceInput(source);
        summary = checkDeviceFiles(files);
      } catch (err) {
        inputProblem(err);
      }
      let unlock: () => Promise<void>;
      try {
        unlock = await lockDataFolder(target.data);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "EDATALOCKED") throw new CliError("usage", `${(err as Error).message}: stop it before importing a device.`);
        throw err;
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
