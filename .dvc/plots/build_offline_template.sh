#!/usr/bin/env bash
# Rebuild .dvc/plots/offline.html: DVC's plots page with Vega, Vega-Lite and Vega-Embed inlined (the
# versions dvc-render loads from a CDN), so `dvc plots show` draws without internet. Needs npm.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm pack --silent vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2 >/dev/null
for f in *.tgz; do mkdir -p "${f%.tgz}"; tar xzf "$f" -C "${f%.tgz}"; done
{
  printf '<!DOCTYPE html>\n<html>\n<head>\n    {refresh_tag}\n    <title>DVC Plot (offline)</title>\n'
  for lib in vega-5.20.2/package/build/vega.min.js vega-lite-5.2.0/package/build/vega-lite.min.js vega-embed-6.18.2/package/build/vega-embed.min.js; do
    printf '    <script>\n'; cat "$lib"; printf '\n    </script>\n'
  done
  printf '    <style>\n        table {\n            border-spacing: 15px;\n        }\n    </style>\n</head>\n<body>\n    {plot_divs}\n</body>\n</html>\n'
} > "$here/offline.html"
for p in vega-5.20.2 vega-lite-5.2.0 vega-embed-6.18.2; do cp "$p/package/LICENSE" "$here/licenses/${p}.LICENSE"; done
