#!/bin/sh
# Vendor Leaflet from the npm registry into ./leaflet (run from anywhere).
#
# Why vendored: town intranets often block CDNs, so the map page must load
# Leaflet from our own server. Why a script: anyone can check that the files
# in git are exactly the published release, and update them the same way.
#
# To update: change VERSION, then put the new release's integrity value here
# (it is on https://registry.npmjs.org/leaflet/<version>, "dist.integrity",
# or run: npm view leaflet@<version> dist.integrity).
set -eu

VERSION=1.9.4
INTEGRITY=sha512-nxS1ynzJOmOlHp+iL3FyWqK89GtNL8U8rvlMOsQdTTssxZwCXh8N2NB3GDQOL+YR3XnWyZAxwQixURb+FA74PA==
URL="https://registry.npmjs.org/leaflet/-/leaflet-$VERSION.tgz"

here=$(cd "$(dirname "$0")" && pwd)
target="$here/leaflet"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "download $URL"
curl -fsSL "$URL" -o "$work/leaflet.tgz"

# npm's integrity is "sha512-" + base64 of the digest; sha512sum wants hex.
expected=$(printf '%s' "${INTEGRITY#sha512-}" | base64 -d | od -An -v -tx1 | tr -d ' \n')
echo "$expected  $work/leaflet.tgz" | sha512sum -c - >/dev/null || {
    echo "integrity check FAILED: the download is not leaflet $VERSION as published" >&2
    exit 1
}
echo "integrity ok ($INTEGRITY)"

tar -xzf "$work/leaflet.tgz" -C "$work"   # unpacks into $work/package
rm -rf "$target"
mkdir -p "$target"
cp "$work/package/dist/leaflet.js" "$work/package/dist/leaflet.css" "$target/"
cp -r "$work/package/dist/images" "$target/images"
cp "$work/package/LICENSE" "$target/LICENSE"
echo "$VERSION" > "$target/VERSION"
echo "leaflet $VERSION copied to $target"
