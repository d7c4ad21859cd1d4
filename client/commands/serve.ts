import { randomBytes } from "node:crypto";
import { networkInterfaces } from "node:os";
import { Command, InvalidArgumentError } from "commander";
import { accessLink, terminalQr } from "../lib/access-link";
import { allowedValues, checkInteger, SETTINGS, type IntegerSettingKey } from "../../lambda/src/public";
import { CliError } from "../lib/failures";
import { parseAllowedHost, parsePublicUrl } from "../serve/host-check";
import { hasTools, startLocalService, TOOLS_HINT } from "../serve/local-service";

/** Addresses that reach only this machine; anything else needs `--host` and an access token. */
const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

/**
 * Addresses a phone on the same network could use for a service bound to `host`: the host itself,
 * or for a wildcard bind (0.0.0.0, ::) this machine's non-loopback IPv4 addresses.
 */
export function reachableHosts(host: string, interfaces = networkInterfaces()): string[] {
  if (host !== "0.0.0.0" && host !== "::") return [host];
  const found = Object.values(interfaces).flatMap((list) => (list ?? []).filter((i) => i.family === "IPv4" && !i.internal).map((i) => i.address));
  return found.length > 0 ? found : [host];
}

/** The settings `knock serve` has a flag for (the settings table's `serveFlag`). */
export type ServeSettingKey = { [K in IntegerSettingKey]: (typeof SETTINGS)[K] extends { readonly serveFlag: string } ? K : never }[IntegerSettingKey];

/** The flag's value, checked as every side checks the setting it stands for (the settings table's range). */
function setting(key: ServeSettingKey) {
  const flag = SETTINGS[key].serveFlag;
  return (value: string): number => {
    const checked = checkInteger(key, value);
    if (!checked.ok) throw new InvalidArgumentError(`${flag} must be ${allowedValues(key)}.`);
    return checked.value;
  };
}

function integer(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}.`);
    return n;
  };
}

/** `--allowed-host`: each use adds one name, checked as it is parsed (a bad one is a usage error). */
function allowedHost(value: string, previous: string[] | undefined): string[] {
  try {
    return [...(previous ?? []), parseAllowedHost(value)];
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

function publicUrl(value: string): string {
  try {
    return parsePublicUrl(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/**
 * Send to Kindle for knock serve: `--kindle-address`, `--kindle-from` and the SMTP URL from
 * `KNOCK_KINDLE_SMTP_URL` (a flag would show its password to `ps`); all or nothing.
 */
function kindleOptions(opts: { kindleAddress?: string; kindleFrom?: string }): { kindle?: { to: string; from: string; smtpUrl: string } } {
  const smtpUrl = process.env.KNOCK_KINDLE_SMTP_URL?.trim() || undefined;
  if (opts.kindleAddress === undefined) {
    if (opts.kindleFrom !== undefined) throw new CliError("usage", "--kindle-from goes with --kindle-address.");
    return {};
  }
  if (smtpUrl === undefined) {
    throw new CliError("usage", "--kindle-address needs the SMTP server in KNOCK_KINDLE_SMTP_URL, e.g. KNOCK_KINDLE_SMTP_URL='smtps://you%40gmail.com:<app password>@smtp.gmail.com:465'.");
  }
  let from = opts.kindleFrom;
  if (from === undefined) {
    try {
      from = decodeURIComponent(new URL(smtpUrl).username);
    } catch {
      from = "";
    }
  }
  if (!from || !from.includes("@")) throw new CliError("usage", "Pass --kindle-from <the sender approved at Amazon>: the SMTP URL's user is not an e-mail address.");
  return { kindle: { to: opts.kindleAddress, from, smtpUrl } };
}

/** `knock serve`: the whole service on this machine, no AWS. */
export function serveCommand(): Command {
  return new Command("serve")
    .description("Run the conversion service on this machine (no AWS): the real handler behind a local Function URL")
    .option("--port <n>", "port to listen on (0 picks a free one)", integer("--port", 0, 65535), 9000)
    .option("--host <address>", "address to bind; anything but 127.0.0.1/::1 makes every request but the page need the access token", "127.0.0.1")
    .option("--token <token>", "access token to ask for (default: none on 127.0.0.1; a new random one on any other address)")
    .option("--data <dir>", "folder for the Adobe device, converted books and the link secret", ".knock")
    .option("--tools <dir>", "folder with libgourou's adept_activate, acsmdownloader, adept_remove, adept_loan_mgt (default: $LIBGOUROU_BIN_DIR)")
    .option(
      `${SETTINGS.lambda_timeout.serveFlag} <seconds>`,
      `the function's time budget per request, as lambda_timeout (${allowedValues("lambda_timeout")})`,
      setting("lambda_timeout"),
      SETTINGS.lambda_timeout.default,
    )
    .option(
      `${SETTINGS.download_url_expiry_seconds.serveFlag} <seconds>`,
      `lifetime of download links, as download_url_expiry_seconds (${allowedValues("download_url_expiry_seconds")})`,
      setting("download_url_expiry_seconds"),
      SETTINGS.download_url_expiry_seconds.default,
    )
    .option(
      "--allowed-host <name>",
      "also answer requests whose Host is NAME or NAME:PORT (repeatable); every other name is refused, so a web page on a name pointed at this machine cannot use it",
      allowedHost,
    )
    .option(
      "--public-url <url>",
      "the address the service is reached at when a proxy sits in front (http:// or https://, no query): download links start with it, and its host is accepted",
      publicUrl,
    )
    .addHelpText(
      "after",
      "\nExamples:\n  $ npx knock serve --tools ~/libgourou/bin\n  $ npx knock convert --url http://127.0.0.1:9000 book.acsm\n" +
        "  $ npx knock serve --tools ~/libgourou/bin --allowed-host knock.lan --public-url https://knock.lan\n",
    )
    .option("--kindle-address <address>", "Send to Kindle: the Kindle's address (…@kindle.com); the SMTP server's URL comes from $KNOCK_KINDLE_SMTP_URL")
    .option("--kindle-from <address>", "Send to Kindle: the sender approved in Amazon's Personal Document Settings (default: the SMTP URL's user)")
    .action(async (opts: { port: number; host: string; data: string; tools?: string; token?: string; timeout: number; linkExpiry: number; allowedHost?: string[]; publicUrl?: string; kindleAddress?: string; kindleFrom?: string }) => {
      const toolsDir = opts.tools ?? (process.env.LIBGOUROU_BIN_DIR?.trim() || undefined);
      const exposed = !LOOPBACK.has(opts.host);
      // Beyond loopback the service asks for a token, as a TOKEN deployment does: 256 random bits
      // unless one is given. On loopback only a given token is asked for.
      const token = opts.token || (exposed ? randomBytes(32).toString("base64url") : undefined);
      let service;
      try {
        service = await startLocalService({
          host: opts.host,
          port: opts.port,
          dataDir: opts.data,
          toolsDir,
          timeoutSeconds: opts.timeout,
          downloadUrlExpirySeconds: opts.linkExpiry,
          accessToken: token,
          allowedHosts: opts.allowedHost,
          publicUrl: opts.publicUrl,
          ...kindleOptions(opts),
        });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "EADDRINUSE") throw new CliError("usage", `Port ${opts.port} on ${opts.host} is in use: pass another --port (0 picks a free one).`);
        if (code === "EDATALOCKED") throw new CliError("usage", `${(err as Error).message}: stop it, or pass another --data folder.`);
        if (code === "EADDRNOTAVAIL") throw new CliError("usage", `${opts.host} is not an address of this machine: pass another --host.`);
        if (err instanceof TypeError && err.message.startsWith("kindle: ")) throw new CliError("usage", `Send to Kindle: ${err.message.slice(8)}`);
        throw err;
      }
      process.stderr.write(`knock serve: data in ${service.dataDir}\n`);
      if (!hasTools(service.toolsDir)) {
        process.stderr.write(
          `knock serve: no converter tools${service.toolsDir ? ` in ${service.toolsDir}` : ""}, so health and conversions answer 500 ConverterMissing. ${TOOLS_HINT}\n`,
        );
      } else {
        process.stderr.write(`knock serve: tools from ${service.toolsDir}\n`);
      }
      process.stderr.write(`knock serve: listening on ${service.url} (Ctrl-C stops)\n`);
      if (opts.kindleAddress) process.stderr.write(`knock serve: Send to Kindle mails books to ${opts.kindleAddress}\n`);
      // The feed's address as an e-reader on the network reaches it (a wildcard bind is no address).
      const port = new URL(service.url).port;
      const feedBase = service.publicUrl ?? (exposed ? `http://${((h) => (h.includes(":") ? `[${h}]` : h))(reachableHosts(opts.host)[0])}:${port}` : service.url);
      process.stderr.write(`knock serve: OPDS feed for e-reader apps: ${feedBase}/opds/${service.feedToken}/ (knock open --opds --url ${feedBase} --data ${opts.data} shows a QR code)\n`);
      if (opts.allowedHost) process.stderr.write(`knock serve: also answers for Host ${opts.allowedHost.join(", ")}\n`);
      if (service.publicUrl) process.stderr.write(`knock serve: download links start with ${service.publicUrl}\n`);
      if (exposed && token) {
        const links = service.publicUrl
          ? [accessLink(`${service.publicUrl}/`, token)]
          : reachableHosts(opts.host).map((h) => accessLink(`http://${h.includes(":") ? `[${h}]` : h}:${port}/`, token));
        process.stderr.write(
          `knock serve: every request but the page needs the access token${opts.token ? " given with --token" : ""}. ` +
            "Anyone on this network who gets the link can convert books with your Adobe device; traffic is plain HTTP.\n" +
            `knock serve: open on your phone (same network):\n${links.map((l) => `  ${l}`).join("\n")}\n\n${await terminalQr(links[0])}\n`,
        );
      } else if (token) {
        process.stderr.write(`knock serve: every request but the page needs the access token given with --token\n`);
      }
      await new Promise<void>((done) => {
        const stop = (): void => {
          process.off("SIGINT", stop);
          process.off("SIGTERM", stop);
          process.stderr.write("knock serve: stopping\n");
          void service.close().then(done);
        };
        process.on("SIGINT", stop);
        process.on("SIGTERM", stop);
      });
    });
}
