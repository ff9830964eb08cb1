#!/usr/bin/env bash
# The library's public API, as an embedding service sees it: every item page `cargo doc` makes
# without the `testing` feature (modules, types, traits, functions, constants), one path per
# line. Compared with `livekit-provision/public-api.txt` so that no item appears or disappears
# unnoticed; `--bless` rewrites that file. It does not list fields, variants or methods (a new
# field of a public struct is not a difference here: review it in the diff), nor a re-export at
# the root of an item listed under its module.
#
# Also fails on any rustdoc warning (a doc link to an internal item, a broken link).
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
RUSTDOCFLAGS="-D warnings" cargo doc -p livekit-provision --no-deps --quiet

# all.html lists each item once, by the path of its page: `daemon/protocol/struct.Status.html`.
current=$(grep -o '<li><a href="[^#"][^"]*"' "$target/doc/livekit_provision/all.html" |
    sed -E 's/<li><a href="//; s/"$//; s/\.html$//' |
    sed -E 's#^(.*/)?([a-z]+)\.([A-Za-z0-9_]+)$#\2 livekit_provision::\1\3#; s#/#::#g' |
    LC_ALL=C sort)
expected=livekit-provision/public-api.txt

if [ "${1:-}" = --bless ]; then
    printf '%s\n' "$current" >"$expected"
    echo "public-api: wrote $(wc -l <"$expected") items to $expected"
    exit 0
fi
if ! diff -u "$expected" <(printf '%s\n' "$current"); then
    echo "public-api: the public API changed (- was, + is); if that is intended, run scripts/public-api.sh --bless" >&2
    exit 1
fi
echo "public-api: $(wc -l <"$expected") items, unchanged"
