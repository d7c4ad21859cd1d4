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
    .addHelpText(
      "after",
      "\nExamples:\n  $ npx knock open                 # scan the QR code with the phone's camera\n" +
        "  $ npx knock open --url http://192.168.1.20:9000 --token \"$KNOCK_TOKEN\"   # a knock serve on your network\n",
    )
    .action(async (opts: { url?: string; token?: string; qr: boolean }) => {
      let link: string;
      const token = opts.token || process.env.KNOCK_TOKEN?.trim();
      if (opts.url || opts.token) {
        if (!opts.url || !token) throw new CliError("usage", "--url and --token go together (or set KNOCK_TOKEN); without both, the link comes from the stack.");
        const { url, warning } = serviceOrigin(opts.url, "--url");
        if (warning) process.stderr.write(`${warning}\n`);
        link = accessLink(url.toString(), token);
      } else {
        let fromStack: string | undefined;
        try {
          fromStack = await readOutput("access_url", { showSecrets: true });
        } catch (err) {
          if (!(err instanceof PulumiNotInstalledError)) throw err;
          throw new CliError(
            "no-service-url",
            `${err.message}, and the access link is the stack's access_url output: install the Pulumi CLI (${PULUMI_INSTALL_URL}),\n` +
              "  or make the link yourself: knock open --url URL --token TOKEN (or set KNOCK_TOKEN).",
          );
        }
        if (!fromStack || fromStack === "null") {
          throw new CliError(
            "no-service-url",
            "No access link: the stack has no access_url output. It exists only with function_url_auth TOKEN:\n" +
              "  pulumi config set function_url_auth TOKEN && pulumi up   (run where the Pulumi CLI is logged in and the stack selected)",
          );
        }
        link = fromStack;
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
