import type { DeviceFiles } from "./device";

/**
 * The activation server libgourou 0.8.7 was built with, and the one 0.8.9 uses (include/libgourou.h,
 * ACS_SERVER). Adobe's servers stopped accepting 0.8.7's activations in early 2026.
 */
export const LEGACY_ACTIVATION_SERVER = "http://adeactivate.adobe.com/adept";
export const ACTIVATION_SERVER = "https://adeactivate.adobe.com/adept";

// adept_activate writes the server it activated against into activation.xml as
// <adept:activationURL> (src/user.cpp: appendTextElem(..., "adept:activationURL", ACSServer)), and
// every later /InitLicenseService (src/libgourou.cpp, doOperatorAuth: a distributor's first
// fulfilment) and /Activate request reads its URL from there, not from the tool's constant. So a
// device activated by 0.8.7 keeps calling the http:// server under 0.8.9 until that element changes.
// The element is the tool's own bookkeeping, outside anything the server signed.
const LEGACY_ACTIVATION_URL_ELEMENT = /(<adept:activationURL>\s*)http:\/\/adeactivate\.adobe\.com\/adept(\s*<\/adept:activationURL>)/;

/**
 * The device with its activation server moved from libgourou 0.8.7's `http://` to the `https://` one
 * 0.8.9 activates against, or undefined when it needs no change (activated by 0.8.9, or already moved).
 */
export function upgradeActivationServer(files: DeviceFiles): DeviceFiles | undefined {
  const activation = files["activation.xml"].toString("utf8");
  if (!LEGACY_ACTIVATION_URL_ELEMENT.test(activation)) return undefined;
  const upgraded = activation.replace(LEGACY_ACTIVATION_URL_ELEMENT, `$1${ACTIVATION_SERVER}$2`);
  return { ...files, "activation.xml": Buffer.from(upgraded, "utf8") };
}
