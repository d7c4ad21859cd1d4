import ipaddr from "ipaddr.js";

/**
 * Which addresses the service may connect to on a caller's behalf (`acsm_url`, and every
 * connection the converter makes: the token's operator URL, the distributor's download links and
 * every redirect). A Lambda function can reach its VPC, the instance metadata endpoint
 * (169.254.169.254) and localhost, and a URL must not turn it into a proxy for those.
 *
 * The classification is ipaddr.js's table of IANA special-purpose ranges (RFC 6890 and successors):
 * only its `unicast` class is public. Two additions it does not make on its own:
 * - IPv6 must also lie in 2000::/3, the only block IANA allocates for global unicast; this refuses
 *   the deprecated IPv4-compatible form `::a.b.c.d` (::/96, RFC 4291 §2.5.5.1), which ipaddr.js
 *   otherwise calls unicast when written in hex (`::7f00:1`).
 * - IPv4-mapped (`::ffff:a.b.c.d`) and IPv4-translated (`::ffff:0:a.b.c.d`, RFC 6145) addresses
 *   are judged by the IPv4 address they carry, which is where the packets go.
 * Forms that carry an IPv4 address the network may translate to anything — NAT64 (64:ff9b::/96,
 * 64:ff9b:1::/48), 6to4 (2002::/16), Teredo (2001::/32) — are refused whatever they embed.
 */
export function isPublicAddress(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  if (!ipaddr.isValid(bare)) return false;
  // ipaddr.isValid also accepts shorthand IPv4 such as "127.1" or "0x7f.1"; those are not what DNS
  // returns, and refusing them keeps "what was checked" and "what is connected to" the same string.
  if (!ipaddr.IPv6.isValid(bare) && !ipaddr.IPv4.isValidFourPartDecimal(bare)) return false;
  const parsed = ipaddr.parse(dottedTailToHex(bare));
  if (parsed.kind() === "ipv4") return parsed.range() === "unicast";
  const v6 = parsed as ipaddr.IPv6;
  const range = v6.range();
  if (range === "ipv4Mapped" || range === "rfc6145") {
    const parts = v6.parts;
    const v4 = new ipaddr.IPv4([parts[6] >> 8, parts[6] & 0xff, parts[7] >> 8, parts[7] & 0xff]);
    return v4.range() === "unicast";
  }
  return range === "unicast" && v6.match(GLOBAL_UNICAST);
}

/**
 * Rewrites an IPv6 address's dotted IPv4 tail as two hex groups ("::1.2.3.4" → "::102:304").
 * ipaddr.js 2.5 parses "::a.b.c.d" as if it were "::ffff:a.b.c.d", which is another address;
 * the hex form is parsed exactly.
 */
function dottedTailToHex(address: string): string {
  const tail = /^(.*:)(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  if (!tail) return address;
  const [a, b, c, d] = tail.slice(2).map(Number);
  return `${tail[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
}

const GLOBAL_UNICAST = ipaddr.parseCIDR("2000::/3") as [ipaddr.IPv6, number];
