import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { createReadStream } from "node:fs";
import { link, mkdir, readFile, stat, unlink, writeFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import { contentDisposition, type PresignedUrl } from "../../lambda/src/public";
import { ifRangeHolds, resolveRange } from "./byte-range";
import type { FileObjects } from "./file-objects";

/** Path prefix under which `knock serve` answers its own download links. */
export const DOWNLOAD_PREFIX = "/_downloads/";

/**
 * The per-data-folder secret that signs download links, made on first use. Created exclusively
 * (link of a complete temporary file), so two servers starting at once agree on one secret.
 */
export async function downloadSecret(dataDir: string): Promise<Buffer> {
  return dataFolderSecret(dataDir, "download-secret");
}

/**
 * The data folder's OPDS feed secret (`<data>/opds-feed-token`, 43 base64url characters, 256
 * bits), made on first use like the link secret: the feed answers at `/opds/<it>/`. Deleting the
 * file rotates it at the next start.
 */
export async function feedToken(dataDir: string): Promise<string> {
  return (await dataFolderSecret(dataDir, "opds-feed-token", () => Buffer.from(randomBytes(32).toString("base64url")))).toString("utf8").trim();
}

/** A secret file of the data folder, made (by `make`, default 32 random bytes) only if absent. */
async function dataFolderSecret(dataDir: string, name: string, make: () => Buffer = () => randomBytes(32)): Promise<Buffer> {
  const path = join(dataDir, name);
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const tmp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  await writeFile(tmp, make(), { mode: 0o600, flag: "wx" });
  try {
    await link(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  return readFile(path);
}

/** What a link grants: one key, until a time, downloaded with these response headers. */
interface LinkClaims {
  readonly key: string;
  readonly expires: number;
  readonly disposition: string;
  readonly contentType: string;
}

function signature(secret: Buffer, c: LinkClaims): string {
  // Each field on its own line: no value can contain a newline (keys and header values are single-line).
  return createHmac("sha256", secret).update(`GET\n${c.key}\n${c.expires}\n${c.disposition}\n${c.contentType}`).digest("hex");
}

/** Options for {@link downloadLinks}. */
export interface DownloadLinksOptions {
  readonly secret: Buffer;
  /** Origin the links point at (`http://127.0.0.1:9000`), read when a link is made. */
  readonly origin: () => string;
  readonly now?: () => Date;
}

/** `knock serve`'s stand-in for presigned GET URLs: the links, and the server side that answers them. */
export interface DownloadLinks {
  /** Makes a link: what the books' object store hands out as its presigned GET link (its LinkMaker). */
  make(key: string, filename: string, contentType: string, expirySeconds: number): PresignedUrl;
  /** Answers a request under {@link DOWNLOAD_PREFIX} with the object of `books` it names. */
  serve(books: FileObjects, req: IncomingMessage, res: ServerResponse): Promise<void>;
}

/**
 * Download links standing in for the output bucket's presigned GET URLs (Amazon S3 User Guide,
 * "Sharing objects with presigned URLs"): a link works without credentials until it expires, then
 * answers 403 AccessDenied "Request has expired"; the `response-content-disposition`/
 * `response-content-type` it was made with are part of what is signed and come back as the
 * download's headers. A single byte range is answered with 206 and an unsatisfiable one with 416,
 * as S3 does (see byte-range.ts).
 */
export function downloadLinks(options: DownloadLinksOptions): DownloadLinks {
  const now = options.now ?? (() => new Date());

  return {
    make(key, filename, contentType, expirySeconds) {
      const claims: LinkClaims = {
        key,
        expires: Math.floor(now().getTime() / 1000) + expirySeconds,
        disposition: contentDisposition(filename),
        contentType,
      };
      const query = new URLSearchParams({
        "response-content-disposition": claims.disposition,
        "response-content-type": claims.contentType,
        expires: String(claims.expires),
        signature: signature(options.secret, claims),
      });
      const path = key.split("/").map(encodeURIComponent).join("/");
      return { url: `${options.origin()}${DOWNLOAD_PREFIX}${path}?${query}`, expiresAt: new Date(claims.expires * 1000) };
    },

    async serve(books, req, res) {
      const url = new URL(req.url ?? "/", "http://local");
      const fail = (status: number, code: string, message: string, extra = ""): void => {
        const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message>${extra}</Error>`;
        res.writeHead(status, { "content-type": "application/xml", "content-length": Buffer.byteLength(body) }).end(req.method === "HEAD" ? undefined : body);
      };
      if (req.method !== "GET" && req.method !== "HEAD") return fail(405, "MethodNotAllowed", "The specified method is not allowed against this resource.");
      let key: string;
      try {
        key = url.pathname.slice(DOWNLOAD_PREFIX.length).split("/").map(decodeURIComponent).join("/");
      } catch {
        return fail(400, "InvalidURI", "Couldn't parse the specified URI.");
      }
      const claims: LinkClaims = {
        key,
        expires: Number(url.searchParams.get("expires")),
        disposition: url.searchParams.get("response-content-disposition") ?? "",
        contentType: url.searchParams.get("response-content-type") ?? "",
      };
      const given = Buffer.from(url.searchParams.get("signature") ?? "", "utf8");
      const expected = Buffer.from(signature(options.secret, claims), "utf8");
      if (!Number.isInteger(claims.expires) || given.length !== expected.length || !timingSafeEqual(given, expected)) {
        return fail(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.");
      }
      if (now().getTime() / 1000 > claims.expires) {
        return fail(
          403,
          "AccessDenied",
          "Request has expired",
          `<Expires>${new Date(claims.expires * 1000).toISOString()}</Expires><ServerTime>${now().toISOString()}</ServerTime>`,
        );
      }
      let path: string;
      let size: number;
      let modified: Date;
      let etag: string;
      try {
        path = books.pathOf(key);
        const info = await stat(path);
        if (!info.isFile()) throw Object.assign(new Error("not a file"), { code: "ENOENT" });
        size = info.size;
        modified = info.mtime;
        // A strong validator for If-Range: a key's file is written once, by a rename, so its inode,
        // size and change time name its bytes.
        etag = `"${info.ino.toString(16)}-${size.toString(16)}-${Math.round(info.mtimeMs * 1000).toString(16)}"`;
      } catch {
        return fail(404, "NoSuchKey", "The specified key does not exist.", `<Key>${key.replace(/[<&>]/g, "_")}</Key>`);
      }
      const lastModified = modified.toUTCString();
      const rangeHeader = typeof req.headers.range === "string" ? req.headers.range : undefined;
      const ifRange = typeof req.headers["if-range"] === "string" ? req.headers["if-range"] : undefined;
      // HEAD takes a Range too: S3's HeadObject answers it as GetObject would, without the body.
      const range = ifRangeHolds(ifRange, { etag, lastModified }) ? resolveRange(rangeHeader, size) : ({ kind: "whole" } as const);
      if (range.kind === "unsatisfiable") {
        const body =
          `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidRange</Code><Message>The requested range is not satisfiable</Message>` +
          `<RangeRequested>${(rangeHeader ?? "").replace(/[<&>]/g, "_")}</RangeRequested><ActualObjectSize>${size}</ActualObjectSize></Error>`;
        res.writeHead(416, { "content-type": "application/xml", "content-range": `bytes */${size}`, "content-length": Buffer.byteLength(body) });
        res.end(req.method === "HEAD" ? undefined : body);
        return;
      }
      const headers: Record<string, string | number> = {
        "content-type": claims.contentType || "application/octet-stream",
        "content-disposition": claims.disposition,
        "content-length": size,
        "last-modified": lastModified,
        etag,
        "accept-ranges": "bytes",
      };
      if (range.kind === "partial") {
        headers["content-length"] = range.end - range.start + 1;
        headers["content-range"] = `bytes ${range.start}-${range.end}/${size}`;
      }
      res.writeHead(range.kind === "partial" ? 206 : 200, headers);
      if (req.method === "HEAD") {
        res.end();
        return;
      }
      await new Promise<void>((done) => {
        const stream = range.kind === "partial" ? createReadStream(path, { start: range.start, end: range.end }) : createReadStream(path);
        stream.on("error", () => {
          res.destroy();
          done();
        });
        res.on("close", () => {
          stream.destroy();
          done();
        });
        stream.pipe(res);
      });
    },
  };
}
