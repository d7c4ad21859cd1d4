// The address policy every outbound connection is checked against (acsm_url and the converter's
// egress proxy): public unicast only, including every IPv6 spelling of a non-public IPv4 address.
import { describe, expect, it } from "vitest";
import { isPublicAddress } from "../../lambda/src/address-policy";

describe("isPublicAddress", () => {
  it.each([
    ["public IPv4", "93.184.216.34"],
    ["public IPv4 (Google DNS)", "8.8.8.8"],
    ["public IPv6", "2606:4700:4700::1111"],
    ["IPv4-mapped public", "::ffff:8.8.8.8"],
    ["IPv4-mapped public, hex", "::ffff:808:808"],
    ["IPv4-translated public", "::ffff:0:8.8.8.8"],
    ["bracketed public IPv6", "[2a00:1450:4001:80b::200e]"],
  ])("allows %s (%s)", (_kind, address) => {
    expect(isPublicAddress(address)).toBe(true);
  });

  // Every non-public IPv4 address in each of its IPv6 disguises.
  const privateV4 = ["127.0.0.1", "10.0.0.7", "169.254.169.254", "192.168.1.1", "172.16.0.1", "100.64.0.1", "0.0.0.0"];
  const hex = (v4: string): string => {
    const [a, b, c, d] = v4.split(".").map(Number);
    return `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  };
  const disguises: [string, (v4: string) => string][] = [
    ["plain IPv4", (v4) => v4],
    ["IPv4-mapped ::ffff:a.b.c.d", (v4) => `::ffff:${v4}`],
    ["IPv4-mapped, hex", (v4) => `::ffff:${hex(v4)}`],
    ["IPv4-mapped, long form", (v4) => `0:0:0:0:0:ffff:${v4}`],
    ["IPv4-compatible ::a.b.c.d", (v4) => `::${v4}`],
    ["IPv4-compatible, hex", (v4) => `::${hex(v4)}`],
    ["IPv4-translated ::ffff:0:a.b.c.d", (v4) => `::ffff:0:${v4}`],
    ["IPv4-translated, hex", (v4) => `::ffff:0:${hex(v4)}`],
    ["NAT64 64:ff9b::/96", (v4) => `64:ff9b::${v4}`],
    ["NAT64, hex", (v4) => `64:ff9b::${hex(v4)}`],
    ["local-use NAT64 64:ff9b:1::/48", (v4) => `64:ff9b:1::${hex(v4)}`],
    ["6to4 2002::/16", (v4) => `2002:${hex(v4)}::1`],
    ["Teredo 2001::/32", (v4) => `2001:0:4136:e378:8000:63bf:${hex(v4)}`],
  ];
  it.each(disguises.flatMap(([form, make]) => privateV4.map((v4) => [form, v4, make(v4)] as const)))(
    "refuses %s of %s (%s)",
    (_form, _v4, address) => {
      expect(isPublicAddress(address)).toBe(false);
    },
  );

  it.each([
    // Tunnels and translators are refused whatever they embed: the network decides where they lead.
    ["NAT64 of a public IPv4", "64:ff9b::808:808"],
    ["6to4 of a public IPv4", "2002:808:808::1"],
    ["Teredo", "2001:0:4136:e378:8000:63bf:3fff:fdd2"],
    ["IPv4-compatible of a public IPv4", "::8.8.8.8"],
    ["IPv6 loopback", "::1"],
    ["IPv6 unspecified", "::"],
    ["link-local", "fe80::1"],
    ["link-local with zone", "fe80::1%eth0"],
    ["unique local", "fd00::1"],
    ["site-local (deprecated)", "fec0::1"],
    ["multicast", "ff02::1"],
    ["documentation", "2001:db8::1"],
    ["discard", "100::1"],
    ["outside 2000::/3", "4000::1"],
    ["IPv4 documentation", "203.0.113.5"],
    ["IPv4 benchmarking", "198.18.0.1"],
    ["IPv4 broadcast", "255.255.255.255"],
    ["IPv4 multicast", "224.0.0.1"],
    ["IPv4 reserved", "240.0.0.1"],
    ["IPv4 shorthand (not what DNS returns)", "127.1"],
    ["IPv4 in hex notation", "0x7f.0.0.1"],
    ["a host name", "localhost"],
    ["garbage", "not-an-ip"],
  ])("refuses %s (%s)", (_kind, address) => {
    expect(isPublicAddress(address)).toBe(false);
  });
});
