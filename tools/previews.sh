#!/bin/sh
# Renders every flow template's email (returnflow templates preview: its first fixture through its own
# handlers) and screenshots it with headless Chromium into docs/templates/previews/NAME.png.
#   usage: sh tools/previews.sh [BUILD]      (make previews; installs chromium when run as root)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
cd "$top"
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "previews: chromium is missing. Run: sudo apt-get install -y chromium" >&2; exit 1
  fi
fi
out="$build/previews"
mkdir -p "$out" docs/templates/previews
for name in $("$build/returnflow" templates list | awk 'NR > 1 && $2 == "flow" { print $1 }'); do
  "$build/returnflow" templates preview "$name" --out "$out" >/dev/null
  # A phone-and-desktop friendly width; the email is at most 600 px wide, centred.
  chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
    --window-size=700,1100 --screenshot="docs/templates/previews/$name.png" "file://$top/$out/$name.html" \
    >/dev/null 2>&1
  echo "previews: docs/templates/previews/$name.png"
done
