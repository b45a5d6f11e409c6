#!/bin/sh
# Renders every flow template's email (returnflow templates preview: its first fixture through its own
# handlers), screenshots it with headless Chromium and crops the picture to the email
# (tools/png.py) into docs/templates/previews/NAME.png.
#   usage: sh tools/previews.sh [BUILD]      (make previews; installs chromium and fonts-noto-cjk when
#                                             run as root, else names them)
# The fixtures' customers have CJK names (健二): without a font that covers them, Chromium draws empty
# boxes, so fonts-noto-cjk is a dependency of the previews, like chromium itself.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
cd "$top"
sh tools/deps.sh previews
out="$build/previews"
mkdir -p "$out" docs/templates/previews
for name in $("$build/returnflow" templates list | awk 'NR > 1 && $2 == "flow" { print $1 }'); do
  "$build/returnflow" templates preview "$name" --out "$out" >/dev/null
  # A tall canvas, 700 px wide (the email is at most 600 px, centred); the crop keeps the email and a
  # margin of its background, so no preview carries an empty page below it.
  chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
    --window-size=700,4000 --screenshot="$out/$name.png" "file://$top/$out/$name.html" >/dev/null 2>&1
  python3 tools/png.py crop "$out/$name.png" "docs/templates/previews/$name.png" 24 | sed 's/^/previews: /'
done
