#!/usr/bin/env bash
# The libraries' public APIs, as an embedding service sees them: every item page `cargo doc`
# makes without the `testing` feature (modules, types, traits, functions, constants), one path
# per line, for each library crate: `livekit-provision` (the pure core) and
# `livekit-provision-daemon` (the control plane a host embeds). Each is compared with its
# `<crate>/public-api.txt` so that no item appears or disappears unnoticed; `--bless` rewrites
# those files. It does not list fields, variants or methods (a new field of a public struct is
# not a difference here: review it in the diff), nor a re-export at the root of an item listed
# under its module.
#
# Also fails on any rustdoc warning (a doc link to an internal item, a broken link).
set -euo pipefail
cd "$(dirname "$0")/.."

CRATES=(livekit-provision livekit-provision-daemon)
target=${CARGO_TARGET_DIR:-target}
args=()
for crate in "${CRATES[@]}"; do args+=(-p "$crate"); done
RUSTDOCFLAGS="-D warnings" cargo doc "${args[@]}" --no-deps --lib --quiet

status=0
for crate in "${CRATES[@]}"; do
    lib=${crate//-/_}
    # all.html lists each item once, by the path of its page: `protocol/struct.Status.html`.
    current=$(grep -o '<li><a href="[^#"][^"]*"' "$target/doc/$lib/all.html" |
        sed -E 's/<li><a href="//; s/"$//; s/\.html$//' |
        sed -E "s#^(.*/)?([a-z]+)\\.([A-Za-z0-9_]+)\$#\\2 $lib::\\1\\3#; s#/#::#g" |
        LC_ALL=C sort)
    expected=$crate/public-api.txt
    if [ "${1:-}" = --bless ]; then
        printf '%s\n' "$current" >"$expected"
        echo "public-api: wrote $(wc -l <"$expected") items to $expected"
        continue
    fi
    if ! diff -u "$expected" <(printf '%s\n' "$current"); then
        echo "public-api: the public API of $crate changed (- was, + is); if that is intended, run scripts/public-api.sh --bless" >&2
        status=1
    else
        echo "public-api: $crate: $(wc -l <"$expected") items, unchanged"
    fi
done
exit "$status"
