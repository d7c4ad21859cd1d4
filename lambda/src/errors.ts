/**
 * The small set of failures the handler answers with something other than 500. Each class carries
 * its HTTP status and a message meant for the caller: it says what was wrong and what is allowed.
 * Anything that is not a {@link ServiceError} is treated as unexpected (500, message withheld).
 */
export class ServiceError extends Error {
  /** HTTP status code the handler answers with. */
  readonly statusCode: number;
  /** Stable machine-readable name, returned as `error_type`. */
  readonly errorType: string;
  /** Extra fields merged into the JSON error body (never secrets or stack traces). */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(statusCode: number, errorType: string, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = errorType;
    this.statusCode = statusCode;
    this.errorType = errorType;
    this.details = details;
  }
}

/** 400: the request is not something the service can convert. */
export class BadRequestError extends ServiceError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(400, "BadRequest", message, details);
  }
}

/** 400: `acsm_url` was refused or could not be fetched within the limits. */
export class AcsmUrlError extends ServiceError {
  constructor(message: string) {
    super(400, "InvalidAcsmUrl", message);
  }
}

/** 405: only GET (health) and POST (convert) exist. */
export class MethodNotAllowedError extends ServiceError {
  constructor(method: string) {
    super(405, "MethodNotAllowed", `Method ${method} is not allowed: use POST to convert an ACSM or GET for health.`);
  }
}

/** 413: the request body is larger than any ACSM file. */
export class PayloadTooLargeError extends ServiceError {
  constructor(sizeBytes: number, limitBytes: number) {
    super(
      413,
      "PayloadTooLarge",
      `Request body is ${sizeBytes} bytes; the limit is ${limitBytes} bytes (ACSM files are a few KB).`,
      { limit_bytes: limitBytes },
    );
  }
}

/** 410: the fulfillment token expired; only the shop can issue a new one. */
export class AcsmExpiredError extends ServiceError {
  constructor(expiration: string) {
    super(
      410,
      "AcsmExpired",
      `This ACSM expired at ${expiration}. Download a fresh ACSM from the shop or library and try again.`,
      { expired_at: expiration },
    );
  }
}

/** 409: Adobe refuses to fulfil for this device because the account's device limit is reached. */
export class DeviceLimitError extends ServiceError {
  constructor() {
    super(
      409,
      "DeviceLimitReached",
      "The distributor refused the download because too many devices have already been used with this " +
        "book or account (E_GOOGLE_DEVICE_LIMIT_REACHED). The service uses one stored Adobe device; " +
        "the limit is counted by the distributor, so retrying will not help. Ask the shop or library to " +
        "reset the device count or issue a new loan.",
      { adept_error: "E_GOOGLE_DEVICE_LIMIT_REACHED" },
    );
  }
}

/** 502: the distributor or Adobe's server failed or could not be reached. */
export class UpstreamError extends ServiceError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(502, "UpstreamError", message, details);
  }
}

/** 504: a converter tool ran out of the invocation's time and was stopped. */
export class ToolTimeoutError extends ServiceError {
  constructor(tool: string, limitMs: number) {
    super(
      504,
      "ConversionTimeout",
      `${tool} did not finish within ${limitMs} ms (the time left in this invocation) and was stopped.`,
    );
  }
}

/** 500 with a stated cause: the image lacks a converter tool. */
export class ToolMissingError extends ServiceError {
  constructor(tool: string) {
    super(500, "ConverterMissing", `The converter tool ${tool} is missing from the deployment image.`);
  }
}

/** 400: the token (or a link or redirect its server returned) points the converter at a non-public address. */
export class ForbiddenDestinationError extends ServiceError {
  constructor(host: string, reason: string) {
    super(
      400,
      "ForbiddenDestination",
      `The ACSM's server, or a link or redirect it returned, points to ${host}, which ${reason}; the converter only connects to public hosts.`,
      { refused_host: host },
    );
  }
}
