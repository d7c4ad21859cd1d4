import QRCode from "qrcode";

/** The access link: the service's address with the token in the fragment (browsers never send it). */
export function accessLink(serviceUrl: string, token: string): string {
  const url = new URL(serviceUrl);
  url.hash = `token=${encodeURIComponent(token)}`;
  return url.toString();
}

/**
 * The link as a QR code for a terminal (two modules per character, so it fits a laptop screen),
 * for a phone's camera to scan. Made with the `qrcode` package; error correction M (15 %).
 */
export async function terminalQr(text: string): Promise<string> {
  return QRCode.toString(text, { type: "terminal", small: true, errorCorrectionLevel: "M" });
}
