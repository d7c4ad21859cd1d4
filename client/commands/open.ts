import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Command } from "commander";
import { accessLink, terminalQr } from "../lib/access-link";
import { CliError } from "../lib/failures";
import { PULUMI_INSTALL_URL, PulumiNotInstalledError, pulumiStackOutput, serviceOrigin, type StackOutputReader } from "../lib/service-address";

/** `knock open`: the access link of a TOKEN deployment, and a QR code of it for a phone. */
export function openCommand(readOutput: StackOutputReader = pulumiStackOutput): Command {
  return new Command("open")
    .description("Print the service's access link (function_url_auth TOKEN) and a QR code to open it on a phone")
    .option("--url <url>", "service address, with --token (default: the stack's access_url output)")
    .option("--token <token>", "access token to put in the link (default: $KNOCK_TOKEN with --url)")
    .option("--no-qr", "print only the link")
    .option("--opds", "print the OPDS feed's address instead, for an e-reader app (default: the stack's opds_feed_url output)")
    .option("--data <dir>", "with --opds and --url: the knock serve data folder whose feed secret to use")
    .addHelpText(
      "after",
      "\nExamples:\n  $ npx knock open                 # scan the QR code with the phone's camera\n" +
        "  $ npx knock open --url http://192.168.1.20:9000 --token \"$KNOCK_TOKEN\"   # a knock serve on your network\n",
    )
    .action(async (opts: { url?: string; token?: string; qr: boolean; opds?: boolean; data?: string }) => {
      if (opts.opds) return openFeed(opts, readOutput);
      if (opts.data) throw new CliError("usage", "--data goes with --opds (the feed of a knock serve data folder).");
      let link: string;
      const token = opts.token || process.env.KNOCK_TOKEN?.trim();
      if (opts.url || opts.token) {
        if (!opts.url || !token) throw new CliError("usage", "--url and --token go together (or set KNOCK_TOKEN); without both, the link comes from the stack.");
        const { url, warning } = serviceOrigin(opts.url, "--url");
        if (warning) process.stderr.write(`${warning}\n`);
        link = accessLink(url.toString(), token);
      } else {
        link = await secretOutput(readOutput, "access_url", {
          what: "the access link",
          instead: "or make the link yourself: knock open --url URL --token TOKEN (or set KNOCK_TOKEN).",
          absent:
            "No access link: the stack has no access_url output. It exists only with function_url_auth TOKEN:\n" +
            "  pulumi config set function_url_auth TOKEN && pulumi up   (run where the Pulumi CLI is logged in and the stack selected)",
        });
      }
      process.stdout.write(link + "\n");
      if (opts.qr) {
        process.stderr.write("\nScan with the phone's camera to open the page:\n\n" + (await terminalQr(link)) + "\n");
        process.stderr.write(
          "Anyone with this link can use the service. To replace it: pulumi config set access_token_version <a new number> && pulumi up\n",
        );
      }
    });
}

/**
 * `knock open --opds`: the OPDS feed's address — the stack's `opds_feed_url` output, or with `--url`
 * and `--data` a knock serve's (its data folder's `opds-feed-token`) — and a QR code of it, which
 * KOReader's "Add OPDS catalog" dialog, a phone's camera or an e-reader browser can take.
 */
async function openFeed(opts: { url?: string; token?: string; qr: boolean; data?: string }, readOutput: StackOutputReader): Promise<void> {
  if (opts.token) throw new CliError("usage", "--opds does not take --token: the feed has its own secret (the stack's opds_feed_url, or a knock serve's --data folder).");
  let feed: string;
  if (opts.url || opts.data) {
    if (!opts.url || !opts.data) throw new CliError("usage", "--opds with --url needs --data <the knock serve data folder>, whose opds-feed-token is the feed's secret.");
    const { url, warning } = serviceOrigin(opts.url, "--url");
    if (warning) process.stderr.write(`${warning}\n`);
    const tokenFile = join(opts.data, "opds-feed-token");
    const secret = (await readFile(tokenFile, "utf8").catch(() => "")).trim();
    if (!/^[A-Za-z0-9_-]{43}$/.test(secret)) throw new CliError("input", `No feed secret in ${tokenFile}: start knock serve with --data ${opts.data} once, which makes it.`);
    feed = new URL(`opds/${secret}/`, url).toString();
  } else {
    feed = await secretOutput(readOutput, "opds_feed_url", {
      what: "the feed's address",
      instead: "or, for a knock serve, pass --url URL --data DIR.",
      absent:
        "No OPDS feed: the stack has no opds_feed_url output. It exists only with function_url_auth TOKEN or NONE (an e-reader app cannot sign AWS requests):\n" +
        "  pulumi config set function_url_auth TOKEN && pulumi up",
    });
  }
  process.stdout.write(feed + "\n");
  if (opts.qr) {
    process.stderr.write("\nIn KOReader: Search → OPDS catalog → + (add), and enter this address; or scan it with a phone:\n\n" + (await terminalQr(feed)) + "\n");
    process.stderr.write("Anyone with this address can download your converted books. To replace it: pulumi config set opds_feed_token_version <a new number> && pulumi up\n");
  }
}

/** A secret stack output, or the error that says why there is none and what to do instead. */
async function secretOutput(readOutput: StackOutputReader, name: string, say: { what: string; instead: string; absent: string }): Promise<string> {
  let value: string | undefined;
  try {
    value = await readOutput(name, { showSecrets: true });
  } catch (err) {
    if (!(err instanceof PulumiNotInstalledError)) throw err;
    throw new CliError("no-service-url", `${err.message}, and ${say.what} is the stack's ${name} output: install the Pulumi CLI (${PULUMI_INSTALL_URL}),\n  ${say.instead}`);
  }
  if (!value || value === "null") throw new CliError("no-service-url", say.absent);
  return value;
}
