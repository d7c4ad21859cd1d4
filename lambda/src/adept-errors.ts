/**
 * Every distributor or Adobe failure the service explains on its own: what the converter tools
 * report, the answer the caller gets (HTTP status, `error_type`, a message saying what happened and
 * what to do) and whether a second try inside the same request may help.
 *
 * How the tools report them (libgourou 0.8.9, see test/fixtures/libgourou/libgourou-standin):
 * - an ADEPT server answering `<error data="E_…"/>` is exception 0x1003 (GOUROU_ADEPT_ERROR,
 *   include/libgourou_common.h) with the `data` attribute as message (src/libgourou.cpp,
 *   DRMProcessor::sendRequest); real servers put the code first, sometimes followed by a URL.
 * - an HTTP status >= 400 is 0x5011 (CLIENT_HTTP_ERROR) "HTTP Error code N", every such status alike
 *   (utils/drmprocessorclientimpl.cpp, sendHTTPRequest, reads CURLINFO_RESPONSE_CODE of the last
 *   answer, after the redirects libcurl followed; src/libgourou.cpp sendRequest passes it on).
 * - a curl failure is 0x500b (CLIENT_NETWORK_ERROR) "Error " + curl_easy_strerror(); the tool
 *   itself already retries CURLE_COULDNT_CONNECT and CURLE_RECV_ERROR five times (same function,
 *   HTTP_REQ_MAX_RETRY), so only the curl failures it does not retry are retried here.
 *
 * Permanent failures get 4xx statuses (never "try again later": the page offers "Try again" for
 * status >= 500 or 429, lambda/page/helpers.ts retryable); transient ones end as 5xx once the
 * request's bounded retries are used up.
 */

/** Whether a second try within the request may succeed. */
export type Persistence = "permanent" | "transient";

/** One row of the table: the answer for one known failure. */
export interface KnownFailure {
  readonly statusCode: number;
  readonly errorType: string;
  readonly persistence: Persistence;
  /** What happened and what to do, for the caller. */
  readonly message: string;
}

/**
 * The ADEPT server error codes (the `data` of an `<error>` reply). Public sources for each meaning
 * are named in the row's comment; the code itself is what the tool prints after "Message :".
 */
export const ADEPT_SERVER_ERRORS: Readonly<Record<string, KnownFailure>> = {
  // The fulfilment token was already fulfilled for a different Adobe user (activation): the
  // operator binds a purchase or loan to the first identity that opened it. Public ACSM-converter
  // projects' known-error tables describe it the same way ("already opened (fulfilled) by a
  // different user account"; one notes that minting a new device on retry causes it); libgourou
  // passes the code through unchanged (src/libgourou.cpp, sendRequest). No retry clears it.
  E_LIC_ALREADY_FULFILLED_BY_ANOTHER_USER: {
    statusCode: 409,
    errorType: "AlreadyFulfilledByAnotherUser",
    persistence: "permanent",
    message:
      "The distributor refused the download because this ACSM was already opened with another Adobe identity " +
      "(E_LIC_ALREADY_FULFILLED_BY_ANOTHER_USER), for example in Adobe Digital Editions or another converter; it " +
      "gives the book only to that identity. Open the ACSM with the app or tool that first opened it, or ask the " +
      "shop or library for a new ACSM. Retrying will not help.",
  },
  // Google Play Books' operator counts devices per book/account (public guides: ask Google's
  // Books partner support to reset the download count). Answered by DeviceLimitError.
  E_GOOGLE_DEVICE_LIMIT_REACHED: {
    statusCode: 409,
    errorType: "DeviceLimitReached",
    persistence: "permanent",
    message: "The distributor refused the download because too many devices have already been used with this book or account (E_GOOGLE_DEVICE_LIMIT_REACHED).",
  },
  // The signed request's time is outside what the server accepts, or the server no longer accepts
  // the device's activation; convert.ts re-activates the device and retries once before this row
  // answers (src/libgourou.cpp signs every request with a fresh <adept:expiration>).
  E_ADEPT_REQUEST_EXPIRED: {
    statusCode: 502,
    errorType: "UpstreamError",
    persistence: "permanent",
    message:
      "Adobe's server refused the request as expired (E_ADEPT_REQUEST_EXPIRED) even after the service activated a " +
      "new Adobe device: check that the clock of the machine running the converter is right; otherwise the " +
      "distributor's or Adobe's server is at fault.",
  },
  // The operator's license server failed to sign the license for this fulfilment: a fault on the
  // distributor's side (a public ACSM converter's known-error list calls it "a temporary issue on
  // the content provider's end"). Not retried
  // inside the request: it does not clear within seconds.
  E_LIC_LICENSE_SIGN_ERROR: {
    statusCode: 502,
    errorType: "LicenseSignError",
    persistence: "permanent",
    message:
      "The distributor's license server could not sign the book's license (E_LIC_LICENSE_SIGN_ERROR): a fault on " +
      "the shop's or library's side, not in the ACSM. Try again in a few hours; if it keeps failing, ask the shop or " +
      "library to check the order or issue a new ACSM.",
  },
  // The operator (the shop's Adobe Content Server) has no distribution rights for this resource:
  // the book was withdrawn or the shop's ACS account is not entitled to distribute it.
  E_URLLINK_NO_DISTRIBUTION_RIGHTS: {
    statusCode: 403,
    errorType: "NoDistributionRights",
    persistence: "permanent",
    message:
      "The distributor refused the download because it has no rights to distribute this book any more " +
      "(E_URLLINK_NO_DISTRIBUTION_RIGHTS): the book may have been withdrawn. Ask the shop or library for a refund " +
      "or a new ACSM. Retrying will not help.",
  },
  // The loan this token belongs to was returned already (utils/adept_loan_mgt.cpp returns loans
  // with /LoanReturn; the operator then refuses the token).
  E_LIC_ALREADY_RETURNED: {
    statusCode: 410,
    errorType: "LoanAlreadyReturned",
    persistence: "permanent",
    message:
      "The library refused the download because this loan was already returned (E_LIC_ALREADY_RETURNED). Borrow " +
      "the book again and download the new ACSM. Retrying will not help.",
  },
  // Adobe ID sign-in (adept_activate -u, POST <authURL>/SignInDirect, src/libgourou.cpp
  // signIn) refused: Adobe asks for a password reset or rejects the credentials while retiring
  // Adobe ID sign-in for Digital Editions clients. The service activates anonymously (-a), which
  // is unaffected.
  E_ADEPT_RESET_PW_REQUIRED: {
    statusCode: 403,
    errorType: "AdobeSignInRefused",
    persistence: "permanent",
    message:
      "Adobe refused the Adobe ID sign-in (E_ADEPT_RESET_PW_REQUIRED): Adobe is retiring Adobe ID sign-in for " +
      "Digital Editions, so a device tied to an Adobe ID cannot be used. Anonymous activation (what this service " +
      "uses) is unaffected: delete the stored device so that the next request activates an anonymous one.",
  },
  E_AUTH_FAILED: {
    statusCode: 403,
    errorType: "AdobeSignInRefused",
    persistence: "permanent",
    message:
      "Adobe refused the Adobe ID sign-in (E_AUTH_FAILED): Adobe is retiring Adobe ID sign-in for Digital " +
      "Editions, so a device tied to an Adobe ID cannot be used. Anonymous activation (what this service uses) " +
      "is unaffected: delete the stored device so that the next request activates an anonymous one.",
  },
};

/**
 * HTTP statuses from the distributor (0x5011 "HTTP Error code N", utils/drmprocessorclientimpl.cpp
 * sendHTTPRequest). 403 and 404 are refusals no retry changes; 429 and 5xx are the server being busy
 * or failing, retried inside the request. Through the egress proxy "HTTP Error code 403" is also the
 * proxy's own refusal of an http: destination: the proxy records every refusal, and withEgress
 * (egress.ts) answers ForbiddenDestination instead of the 403 row when the run that failed met one.
 */
export const DISTRIBUTOR_HTTP_ERRORS = {
  // RFC 9110 §15.5.4: the server understood the request and refuses to fulfil it, and a repeat of the
  // same request (the same token, the same device) gets the same answer, so it is not retried. Which
  // refusal the operator means it does not say; the causes people meet are a loan or purchase of
  // another library card or account and a link the shop or library revoked.
  forbidden: {
    statusCode: 403,
    errorType: "DistributorRefused",
    persistence: "permanent",
    message:
      "The distributor's server refused to give this ACSM's book to this service's Adobe device (HTTP 403 Forbidden): " +
      "the loan or purchase may belong to another library card or account, or the link may have been revoked. " +
      "Download a new ACSM from the shop or library, signed in with the account that borrowed or bought the book. " +
      "Retrying this ACSM will not help.",
  },
  // RFC 9110 §15.5.5: nothing at the ACSM's operatorURL (a closed shop, a withdrawn order).
  notFound: {
    statusCode: 422,
    errorType: "DistributorNotFound",
    persistence: "permanent",
    message:
      "The distributor's server has nothing at the address this ACSM names (HTTP 404 Not Found): the order or loan " +
      "may have been withdrawn or the shop moved its server. Download a new ACSM from the shop or library.",
  },
  // RFC 6585 §4: too many requests; retried with backoff, then answered 503.
  tooManyRequests: {
    statusCode: 503,
    errorType: "DistributorBusy",
    persistence: "transient",
    message: "The distributor's server is refusing requests for now (HTTP 429 Too Many Requests). Wait a few minutes, then try again.",
  },
  // RFC 9110 §15.6: the server failed; retried with backoff, then answered 502 as a
  // NetworkFailureError ("Could not talk to the distributor's server: HTTP Error code N.").
  serverError: {
    statusCode: 502,
    errorType: "UpstreamError",
    persistence: "transient",
    message: "Could not talk to the distributor's server.",
  },
} as const satisfies Record<string, KnownFailure>;

/**
 * curl failures (0x500b "Error " + curl_easy_strerror(), libcurl lib/strerror.c) that libgourou
 * does not retry itself and that a second fulfilment may get past: a connection reset while
 * sending, closed before any answer, or cut mid-download.
 */
export const TRANSIENT_CURL_ERRORS: readonly string[] = [
  "Failed sending data to the peer", // CURLE_SEND_ERROR
  "Server returned nothing (no headers, no data)", // CURLE_GOT_NOTHING
  "Transferred a partial file", // CURLE_PARTIAL_FILE
];

/** The server's error code at the start of a 0x1003 message (`E_…`, maybe followed by a URL). */
export function serverErrorCode(message: string): string | undefined {
  return /\bE_[A-Z0-9_]+\b/.exec(message)?.[0];
}

/** The distributor's HTTP status in a 0x5011 message ("HTTP Error code 503"). */
export function httpStatusOf(message: string): number | undefined {
  const m = /HTTP Error code (\d{3})\b/.exec(message);
  return m ? Number(m[1]) : undefined;
}

/** The row for a distributor HTTP status, or undefined for one the table does not name. */
export function httpFailure(status: number): KnownFailure | undefined {
  if (status === 403) return DISTRIBUTOR_HTTP_ERRORS.forbidden;
  if (status === 404) return DISTRIBUTOR_HTTP_ERRORS.notFound;
  if (status === 429) return DISTRIBUTOR_HTTP_ERRORS.tooManyRequests;
  if (status >= 500 && status <= 599) return DISTRIBUTOR_HTTP_ERRORS.serverError;
  return undefined;
}

/** A tool failure as {@link isTransientFailure} reads it. */
export interface ToolFailure {
  readonly exceptionCode: string | undefined;
  readonly toolMessage: string;
}

/** True when a second run of the tool may succeed: HTTP 429 or 5xx, or a curl failure in {@link TRANSIENT_CURL_ERRORS}. */
export function isTransientFailure(failure: ToolFailure): boolean {
  if (failure.exceptionCode === "0x5011") {
    const status = httpStatusOf(failure.toolMessage);
    return status !== undefined && httpFailure(status)?.persistence === "transient";
  }
  if (failure.exceptionCode === "0x500b") return TRANSIENT_CURL_ERRORS.some((text) => failure.toolMessage.includes(text));
  return false;
}
