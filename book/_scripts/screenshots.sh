#!/usr/bin/env bash
# Headless-Chromium screenshots of the built book, to check by eye that math renders, figures
# show and nothing is broken. Build first (`make book`), then from the repository root:
#
#   book/_scripts/screenshots.sh [OUTDIR] [PAGE ...]
#
# OUTDIR defaults to _build/screenshots; PAGEs are _toc.yml entries such as book/intro
# (default: every page in _toc.yml). One PNG per page: OUTDIR/<name>.png.
# Environment:
#   HTML=_build/html       the built HTML to photograph
#   WIDTH=1280 HEIGHT=2400 window size (raise HEIGHT to see further down a page)
#   MATHJAX=/path/to/es5/tex-mml-chtml.js   the book loads MathJax 3 from a CDN; on a machine
#                          without internet, point this at a local copy (e.g. from
#                          `npm install mathjax@3`): the pages are copied and rewired to it.
# Needs Debian's chromium (`apt-get install -y chromium`).
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT=${1:-_build/screenshots}
shift || true
HTML=${HTML:-_build/html}
WIDTH=${WIDTH:-1280}
HEIGHT=${HEIGHT:-2400}
BROWSER=$(command -v chromium || command -v chromium-browser || true)
[ -n "$BROWSER" ] || { echo "chromium not found: apt-get install -y chromium" >&2; exit 1; }
[ -d "$HTML" ] || { echo "no built book in $HTML: run make book first" >&2; exit 1; }

if [ $# -gt 0 ]; then
  PAGES=("$@")
else
  mapfile -t PAGES < <(grep -oE '^\s*-?\s*(root|file):\s*\S+' _toc.yml | sed -E 's/.*:\s*//')
fi

if [ -n "${MATHJAX:-}" ]; then
  [ -f "$MATHJAX" ] || { echo "MATHJAX=$MATHJAX is not a file" >&2; exit 1; }
  COPY=$(mktemp -d)
  trap 'rm -rf "$COPY"' EXIT
  cp -r "$HTML"/. "$COPY"/
  grep -rl --include='*.html' 'cdn.jsdelivr.net/npm/mathjax@3' "$COPY" \
    | xargs -r sed -i "s#https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js#file://$(realpath "$MATHJAX")#g"
  HTML=$COPY
fi

mkdir -p "$OUT"
for page in "${PAGES[@]}"; do
  page=${page%.ipynb}; page=${page%.md}
  file="$HTML/$page.html"
  if [ ! -f "$file" ]; then echo "skip $page (no $file)" >&2; continue; fi
  png="$OUT/$(basename "$page").png"
  profile=$(mktemp -d)
  "$BROWSER" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --virtual-time-budget=20000 --user-data-dir="$profile" \
    --window-size="$WIDTH,$HEIGHT" --screenshot="$(realpath -m "$png")" \
    "file://$(realpath "$file")" >/dev/null 2>&1 || echo "chromium failed on $page" >&2
  rm -rf "$profile"
  [ -f "$png" ] && echo "$png"
done
