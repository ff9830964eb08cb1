#!/usr/bin/env bash
# Build the seed corpus of the `tarball` target: release-shaped archives, small and reproducible.
# The first byte of each seed is the target's mode: 0x00 = raw tar (the target gzips it),
# 0x01 = bytes fed as is (here: a .tar.gz, and an HTML error page).
set -euo pipefail
out="$(cd "$(dirname "$0")" && pwd)/tarball"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
cd "$work"
printf '#!/bin/sh\necho livekit-server 1.7.2\n' > livekit-server
chmod 755 livekit-server
printf 'Apache-2.0\n' > LICENSE
printf '# LiveKit\n' > README.md
ln -s /etc/passwd link
tar_() { tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu -b 1 "$@"; }
seed() { # name mode-byte file
    { printf "$2"; cat "$3"; } > "$out/$1"
}
tar_ -cf release.tar LICENSE README.md livekit-server
seed tar_release '\x00' release.tar
gzip -n -9 -c release.tar > release.tar.gz
seed gz_release '\x01' release.tar.gz
tar_ -cf dot.tar ./livekit-server
seed tar_dot_slash '\x00' dot.tar
tar_ -cf sym.tar --transform='s,^link$,livekit-server,' link
seed tar_symlink '\x00' sym.tar
tar_ -cf nested.tar --transform='s,^livekit-server$,bin/livekit-server,' LICENSE livekit-server
seed tar_nested '\x00' nested.tar
printf '<html><body>Not Found</body></html>\n' > page.html
seed gz_html '\x01' page.html
ls -l "$out"
