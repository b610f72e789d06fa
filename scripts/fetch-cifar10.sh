#!/usr/bin/env bash
# Download the official CIFAR-10 binary release and check it.
#
# Usage:
#   scripts/fetch-cifar10.sh [TARGET_DIR]        download, check MD5, extract into TARGET_DIR
#                                                (default: datasets), giving
#                                                TARGET_DIR/cifar-10-batches-bin/, then check
#                                                the SHA-256 of the six .bin files
#   scripts/fetch-cifar10.sh --archive FILE [TARGET_DIR]
#                                                same, from an already downloaded tar.gz
#   scripts/fetch-cifar10.sh --verify-only DIR   only check the SHA-256 of the six files in DIR
#
# Afterwards point eosbench at the data with --data-dir, EOSBENCH_DATA, or run it from the
# repository root (default datasets/cifar-10-batches-bin). `eosbench data verify` repeats the
# checks and also counts records and labels.
set -euo pipefail

URL="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
ARCHIVE_MD5="c32a1d4ab5d03f1284b67883e8d87530"
# SHA-256 of the six files inside the official archive (same values as
# eosbench::data::OFFICIAL_FILES).
SHA256S="cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5  data_batch_1.bin
a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed  data_batch_2.bin
bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67  data_batch_3.bin
014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48  data_batch_4.bin
755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add  data_batch_5.bin
8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b  test_batch.bin"

die() {
    echo "fetch-cifar10: error: $*" >&2
    exit 1
}

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
}

# sha256 of a file, lower-case hex (GNU coreutils or macOS shasum).
sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    else
        die "need sha256sum or shasum to check the files"
    fi
}

md5_of() {
    if command -v md5sum >/dev/null 2>&1; then
        md5sum "$1" | cut -d' ' -f1
    elif command -v md5 >/dev/null 2>&1; then
        md5 -q "$1"
    else
        die "need md5sum or md5 to check the archive"
    fi
}

# Check the six .bin files in $1; print one line per file; fail if any is missing or differs.
verify_dir() {
    local dir="$1" bad=0 want name got
    [ -d "$dir" ] || die "directory $dir does not exist"
    while read -r want name; do
        if [ ! -f "$dir/$name" ]; then
            echo "MISSING   $name"
            bad=1
            continue
        fi
        got="$(sha256_of "$dir/$name")"
        if [ "$got" = "$want" ]; then
            echo "ok        $name"
        else
            echo "MISMATCH  $name (sha256 $got, expected $want)"
            bad=1
        fi
    done <<<"$SHA256S"
    [ "$bad" -eq 0 ] || die "the files in $dir are not the official CIFAR-10 binary release; delete them and run this script again"
    echo "all six files in $dir match the official SHA-256 digests"
}

download() {
    local out="$1"
    echo "downloading $URL"
    if command -v curl >/dev/null 2>&1; then
        curl -fL --retry 3 -o "$out" "$URL" || die "download failed (curl); check the network or download $URL by hand and pass it with --archive"
    elif command -v wget >/dev/null 2>&1; then
        wget -O "$out" "$URL" || die "download failed (wget); check the network or download $URL by hand and pass it with --archive"
    else
        die "need curl or wget to download $URL"
    fi
}

archive=""
case "${1:-}" in
-h | --help)
    usage
    exit 0
    ;;
--verify-only)
    [ $# -eq 2 ] || die "usage: $0 --verify-only DIR"
    verify_dir "$2"
    exit 0
    ;;
--archive)
    [ $# -ge 2 ] || die "usage: $0 --archive FILE [TARGET_DIR]"
    archive="$2"
    [ -f "$archive" ] || die "archive $archive not found"
    shift 2
    ;;
-*)
    die "unknown option $1 (see --help)"
    ;;
esac
[ $# -le 1 ] || die "too many arguments (see --help)"
target="${1:-datasets}"

mkdir -p "$target" || die "cannot create $target"
dest="$target/cifar-10-batches-bin"
if [ -d "$dest" ]; then
    echo "$dest already exists; checking it"
    verify_dir "$dest"
    exit 0
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/fetch-cifar10.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

if [ -z "$archive" ]; then
    archive="$tmp/cifar-10-binary.tar.gz"
    download "$archive"
fi

got_md5="$(md5_of "$archive")"
[ "$got_md5" = "$ARCHIVE_MD5" ] || die "archive $archive has MD5 $got_md5, expected $ARCHIVE_MD5 (corrupt or not the official cifar-10-binary.tar.gz)"
echo "archive MD5 ok ($ARCHIVE_MD5)"

# Extract into a scratch folder first so a failed extraction leaves no half-filled $dest.
tar -xzf "$archive" -C "$tmp" || die "could not extract $archive"
[ -d "$tmp/cifar-10-batches-bin" ] || die "archive did not contain cifar-10-batches-bin/"
verify_dir "$tmp/cifar-10-batches-bin"
mv "$tmp/cifar-10-batches-bin" "$dest" || die "could not move the files into $dest"
echo "CIFAR-10 is in $dest"
