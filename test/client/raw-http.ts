// HTTP requests written byte for byte on a socket to 127.0.0.1, for the cases an HTTP client will
// not send: any Host (or none, in HTTP/1.0), two Host fields, an absolute-form target. The answer
// is read until the server closes the connection (every request here asks it to).
import { connect } from "node:net";

/** A parsed HTTP/1.x response. */
export interface RawAnswer {
  readonly status: number;
  /** Header names lower-cased; repeated names joined with ", ". */
  readonly headers: Record<string, string>;
  readonly body: Buffer;
}

/**
 * Sends `head` (request line and header lines, without the blank line; `Connection: close` is
 * added) and `body`, and parses what comes back.
 */
export function rawHttp(port: number, head: string[], body: Buffer | string = ""): Promise<RawAnswer> {
  const payload = Buffer.concat([Buffer.from([...head, "Connection: close", "", ""].join("\r\n"), "latin1"), Buffer.from(body)]);
  return new Promise((done, fail) => {
    // Written, not ended: a half-closed socket lets Node's server drop an answer still being made.
    const socket = connect(port, "127.0.0.1", () => socket.write(payload));
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", fail);
    socket.on("close", () => {
      const all = Buffer.concat(chunks);
      const split = all.indexOf("\r\n\r\n");
      if (split === -1) return fail(new Error(`no HTTP answer: ${JSON.stringify(all.toString("latin1"))}`));
      const [statusLine, ...lines] = all.subarray(0, split).toString("latin1").split("\r\n");
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(":");
        const name = line.slice(0, colon).trim().toLowerCase();
        const value = line.slice(colon + 1).trim();
        headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
      }
      const rest = all.subarray(split + 4);
      // Content-Length says how much of what followed is this answer's body (a HEAD has none).
      const length = headers["content-length"] === undefined ? rest.length : Math.min(rest.length, Number(headers["content-length"]));
      done({ status: Number(statusLine.split(" ")[1]), headers, body: rest.subarray(0, length) });
    });
  });
}

/** The JSON body of an answer. */
export function jsonBody<T = Record<string, unknown>>(answer: RawAnswer): T {
  return JSON.parse(answer.body.toString("utf8")) as T;
}
