// Runs `knock serve`'s service with the libgourou stand-ins and the handler tests' fake distributor
// (no network, no Adobe), for trying the client by hand and for the README's transcript:
//   node --import tsx test/client/standin-serve.ts [port]
// With the real tools and a network, `npx knock serve --tools DIR` is the command to use.
import { startStandinService } from "./helpers";

async function run(): Promise<void> {
  const service = await startStandinService({ port: Number(process.argv[2] ?? 9000), log: (line) => process.stderr.write(line + "\n") });
  process.stderr.write(`stand-in service listening on ${service.url} (data ${service.dataDir}; Ctrl-C stops)\n`);
  const stop = (): void => void service.stop().then(() => process.exit(0));
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

void run();
