# Sourced by e2e/livekit-server.sh and e2e/pebble.sh: the checks and the cache both share.
#
#   go_cache_prepare NAME VERSION   # sets cache_root and dir=<cache_root>/NAME/VERSION
#
# The cache is OUTSIDE the repository, keyed by version:
#   ${LIVEKIT_PROVISION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/livekit-provision}/NAME/VERSION/
# Exits 1 (one `e2e:` line) on a bad version or a cache inside the repository.

say() { printf 'e2e: %s\n' "$*" >&2; }

go_cache_prepare() {
    local name=$1 version=$2 repo
    if ! [[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
        say "usage: $0 vMAJOR.MINOR.PATCH (got '${version}')"
        exit 1
    fi
    cache_root=${LIVEKIT_PROVISION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/livekit-provision}
    case $cache_root in /*) ;; *) say "the cache directory must be absolute: $cache_root"; exit 1 ;; esac
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
    mkdir -p "$cache_root/$name"
    case $(cd "$cache_root" && pwd -P)/ in
        "$repo"/*) say "the cache $cache_root is inside the repository; $name binaries never enter it"; exit 1 ;;
    esac
    dir=$cache_root/$name/$version
}
