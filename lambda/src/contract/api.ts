/**
 * The API's wire shapes (docs/api.md), written once: the function builds its answers as these
 * types and the `knock` client reads them as the same types. Field names are snake_case because
 * they are JSON on the wire. Dependency-free.
 */

/** The JSON body of a conversion request (a raw ACSM body is the other form). */
export interface ConversionRequest {
  /** The ACSM file's XML. Wins over `acsm_url` when both are given. */
  readonly acsm_content?: string;
  /** An https:// URL the service fetches the ACSM from. */
  readonly acsm_url?: string;
  /** The ACSM's file name, echoed as `source_acsm_filename`. */
  readonly filename?: string;
}

/** One converted book in a conversion's answer. */
export interface OutputFile {
  readonly filename: string;
  /** Object key in the output bucket (always `converted/<request id>/<filename>`). */
  readonly s3_key: string;
  /** Presigned GET link, valid until `expires_at`. */
  readonly download_url: string;
  readonly size_bytes: number;
  readonly content_type: string;
  /** ISO 8601. */
  readonly expires_at: string;
}

/** The `loan` field of a conversion's answer: the book is a library loan. */
export interface ConversionLoan {
  readonly id: string;
  readonly title: string | null;
  readonly expires_at: string | null;
  /** False when the token could not be stored (then `warning` says so). */
  readonly returnable: boolean;
  readonly warning?: string;
}

/** 200 answer to a conversion. */
export interface ConversionAnswer {
  readonly message: string;
  readonly output_files: readonly OutputFile[];
  readonly files_count: number;
  readonly source_acsm_filename: string;
  readonly loan?: ConversionLoan;
  /**
   * Present (true) when this ACSM had been converted before and that book was still stored: the
   * answer links that book afresh and the distributor was not asked again.
   */
  readonly reused?: true;
  /** With `reused`: when the book was converted (ISO 8601). */
  readonly converted_at?: string;
  /** With `deliver: "kindle"`: the book was handed to the mail system for the Kindle (never "delivered"). */
  readonly kindle?: KindleSent;
}

/** Where a conversion's book may also go: `deliver` in the request (JSON field or `?deliver=`). */
export const DELIVERIES = ["kindle"] as const;
export type Delivery = (typeof DELIVERIES)[number];

/**
 * A book sent to the Kindle by e-mail. `sent` only: Amazon sends no receipt, and mails the user
 * only when it refuses a document, so the service cannot know that the book arrived.
 */
export interface KindleSent {
  readonly sent: true;
  /** The Message-ID the mail system gave the message. */
  readonly message_id: string;
  /** The Kindle address it went to. */
  readonly to: string;
  readonly transport: "smtp" | "ses";
  /** The attachment's name, which the Kindle library shows as the title: `Title - Author.epub`. */
  readonly attachment_name: string;
  readonly attachment_bytes: number;
  /** What the Kindle pre-flight changed in the EPUB's copy that was sent (the download is untouched). */
  readonly preflight_fixes: readonly string[];
  readonly message: string;
}

/** `POST /kindle`: send a book the output bucket still holds (`s3_key` of a conversion's answer), or a test document. */
export type KindleRequest = { readonly s3_key: string } | { readonly test: true };

/** The answer of `POST /kindle`: the mail, and a fresh link to the book (none for the test document). */
export interface KindleAnswer {
  readonly kindle: KindleSent;
  readonly output_files: readonly OutputFile[];
}

/** A stored loan as the API shows it. */
export interface LoanSummary {
  readonly id: string;
  readonly title: string;
  /** ISO 8601, or null when the token's validity is not a date. */
  readonly expires_at: string | null;
  readonly expired: boolean;
  /** Host of the library's server (the return goes there). */
  readonly operator: string;
}

/** One entry of `GET /loans`: a readable loan, or a stored token that cannot be read. */
export type LoanEntry =
  | (LoanSummary & { readonly stored_at: string; readonly returnable: boolean })
  | { readonly id: string; readonly stored_at: string; readonly returnable: false; readonly error: string };

/** 200 answer to `GET /loans`. */
export interface LoanListAnswer {
  readonly loans: readonly LoanEntry[];
  readonly count: number;
}

/** 200 answer to `POST /loans/<id>/return`. */
export interface LoanReturnAnswer {
  readonly message: string;
  readonly returned: true;
  readonly loan: LoanSummary;
}

/** 200 answer to `DELETE /loans/<id>`. */
export interface LoanForgetAnswer {
  readonly message: string;
  readonly forgotten: true;
  /** The loan as it was stored, or `{id}` alone when its token could not be read. */
  readonly loan: LoanSummary | { readonly id: string };
}

/** The Function URL's access mode, as health reports it. */
export type AccessMode = "AWS_IAM" | "NONE" | "TOKEN";

/** 200 answer to health (`GET /` asking for JSON). */
export interface HealthAnswer {
  readonly status: "ok";
  readonly service: "knock-lambda";
  readonly auth: AccessMode | undefined;
  /** Each converter tool's `-V` line, by tool name. */
  readonly converter: Readonly<Record<string, string>>;
  readonly limits: { readonly max_body_bytes: number; readonly download_url_expiry_seconds: number };
  /** True when Send to Kindle is set up (`deliver: "kindle"`, `POST /kindle`): the page shows its button. */
  readonly send_to_kindle: boolean;
}

/**
 * Every error answer: what was wrong and what is allowed (`error`), a stable name (`error_type`),
 * the request's id for the logs, and fields of the error's own (`routes`, `loan_id`, `detected`, …).
 */
export interface ErrorBody {
  readonly error: string;
  readonly error_type: string;
  readonly request_id: string;
  /** Health's failure only. */
  readonly status?: "unhealthy";
  readonly [field: string]: unknown;
}

/**
 * Largest request body accepted (decoded). ACSM files are a few KB of XML; anything this big is
 * not one, and refusing early keeps memory and /tmp use bounded. Health reports it.
 */
export const MAX_BODY_BYTES = 256 * 1024;

/**
 * Content types a POST body is read as the raw ACSM file under: Adobe's registered type first, then
 * the generic XML types and the one for "a file" (what HTTP tools send for an upload).
 */
export const ACSM_CONTENT_TYPES: readonly string[] = ["application/vnd.adobe.adept+xml", "application/xml", "text/xml", "application/octet-stream"];

/** The content type JSON requests and answers carry. */
export const JSON_CONTENT_TYPE = "application/json";

/**
 * The OPDS feed's media type: an acquisition feed (OPDS Catalog 1.2 §2.1, "Acquisition Feeds";
 * §2.3 on the profile and kind parameters), i.e. an Atom feed (RFC 4287) of books to download.
 */
export const OPDS_ACQUISITION_FEED_TYPE = "application/atom+xml;profile=opds-catalog;kind=acquisition";
