#!/usr/bin/env bash
# Installs the npm packages the compatibility tests use (tests/compat/package.json) into
# tests/compat/node_modules. Idempotent: when every dependency is already installed at the pinned
# version and nothing changed since the last install, it returns at once without touching npm.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

command -v npm >/dev/null || { echo "install.sh: npm not found (scripts/setup.sh installs it)" >&2; exit 1; }

# Up to date when npm's own record of the tree is newer than package.json and every dependency
# is present at exactly the version pinned there.
up_to_date() {
  [ -f node_modules/.package-lock.json ] || return 1
  [ node_modules/.package-lock.json -nt package.json ] || return 1
  node -e '
    const fs = require("fs");
    const deps = require("./package.json").dependencies || {};
    for (const [name, want] of Object.entries(deps)) {
      let have;
      try { have = JSON.parse(fs.readFileSync(`node_modules/${name}/package.json`)).version; }
      catch (e) { process.exit(1); }
      if (/^\d+\.\d+\.\d+$/.test(want) && have !== want) process.exit(1);
    }'
}

if up_to_date; then
  echo "install.sh: tests/compat/node_modules is up to date"
  exit 0
fi
echo "install.sh: installing tests/compat npm packages"
npm install --no-audit --no-fund --loglevel=error
