#!/usr/bin/env bash
# Verify and open an export bundle with standard tools only, exactly as the
# bundle's README.txt tells an investigator (section A). Nothing from
# evidence-intake runs here: zipinfo, unzip, minisign, sha256sum, find, sed, sort,
# cut, diff and age.
#
# usage: test_bundle_standard_tools.sh BUNDLE NODE_PUB IDENTITY EXPECTED_DIR
#   EXPECTED_DIR/<statement-id>/statement.json and attachments/<n> hold the
#   plaintexts the decryption must reproduce byte for byte.
# Exit status 0 only if every step succeeds.
set -euo pipefail

bundle=$(realpath "$1")
node_pub=$(realpath "$2")
identity=$(realpath "$3")
expected=$(realpath "$4")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# 1. Only plain files with safe names (each check must print nothing), then extract.
if zipinfo -s "$bundle" | sed '1,2d;$d' | grep -v '^-'; then
    echo "not a plain file" >&2; exit 1
fi
if zipinfo -1 "$bundle" | grep -E '^/|(^|/)[.][.](/|$)'; then
    echo "unsafe path" >&2; exit 1
fi
mkdir bundle && cd bundle && unzip -q "$bundle"

# 2. Both signatures, with the pinned node key.
minisign -V -p "$node_pub" -m SHA256SUMS
minisign -V -p "$node_pub" -m manifest.json

# 3. Every file's SHA-256.
sha256sum --strict -c SHA256SUMS

# 4. No file missing or added.
find . -type f ! -name SHA256SUMS ! -name SHA256SUMS.minisig \
    | sed 's|^\./||' | LC_ALL=C sort > ../present.txt
cut -c67- SHA256SUMS | LC_ALL=C sort | diff - ../present.txt

# 5. Decrypt every statement and attachment; compare with what was sealed.
count=0
for sealed in statements/*/statement.age statements/*/attachments/*.age; do
    [ -e "$sealed" ] || continue
    id=$(echo "$sealed" | cut -d/ -f2)
    case "$sealed" in
        */statement.age) want="$expected/$id/statement.json" ;;
        *) want="$expected/$id/attachments/$(basename "$sealed" .age)" ;;
    esac
    age -d -i "$identity" -o "$work/plain" "$sealed"
    cmp "$work/plain" "$want"
    rm "$work/plain"
    count=$((count + 1))
done
echo "decrypted and matched: $count files"
