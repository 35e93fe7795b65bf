#!/usr/bin/env bash
# `make deb`: dist/pylb_VERSION_ARCH.deb. pylb lives in /opt/pylb, a private
# Python environment holding pylb (its compiled extension linked against
# Debian's DPDK 22.11) and its pinned dependencies (pyproject.toml), so that
# no system Python package is replaced; /usr/bin/pylb and pylbctl lead there.
# Also: the systemd unit pylb@.service, /etc/pylb (one folder per instance),
# example profiles and configurations, man pages. Depends on the DPDK
# runtime libraries the extension links (found with ldd + dpkg -S) and the
# mempool driver EAL loads.
#   scripts/build-deb.sh [OUT_DIR]     run from the checkout, with `make build` done
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/dist}
py=${PY:-$root/.venv/bin/python}
cd "$root"
version=$("$py" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
arch=$(dpkg --print-architecture)
prefix=/opt/pylb
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# The wheel (the extension built as `make build` builds it), then a private
# environment at its final path inside the stage, its scripts' first lines
# pointed at /opt/pylb.
"$py" -m pip wheel "$root" --no-deps --no-build-isolation -q -w "$stage/wheel"
python3 -m venv "$stage$prefix"
"$stage$prefix/bin/pip" install -q --no-cache-dir --disable-pip-version-check "$stage"/wheel/pylb-*.whl
"$stage$prefix/bin/pip" uninstall -q -y pip setuptools 2>/dev/null || true
grep -rlI "^#!$stage$prefix/bin/python" "$stage$prefix/bin" | xargs -r sed -i "1s|^#!$stage$prefix|#!$prefix|"
sed -i "s|$stage||g" "$stage$prefix/bin/activate"* "$stage$prefix/pyvenv.cfg"
rm -f "$stage$prefix"/lib/python3*/site-packages/pylb-*.dist-info/direct_url.json
find "$stage$prefix" -name __pycache__ -prune -exec rm -rf {} +
if grep -rlI "$stage" "$stage$prefix" >/dev/null; then
    echo "build-deb: the stage's path is left in: $(grep -rlI "$stage" "$stage$prefix" | head -3)" >&2
    exit 1
fi

mkdir -p "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/pylb" \
         "$stage/usr/share/doc/pylb/examples" "$stage/usr/share/man/man8" "$stage/DEBIAN"
ln -s "$prefix/bin/pylb" "$stage/usr/bin/pylb"
ln -s "$prefix/bin/pylbctl" "$stage/usr/bin/pylbctl"
install -m 0644 packaging/systemd/pylb@.service "$stage/lib/systemd/system/"
install -m 0644 packaging/etc-README "$stage/etc/pylb/README"
cp hwconfig/*.yaml examples/*.yaml "$stage/usr/share/doc/pylb/examples/"
install -m 0644 README.md "$stage/usr/share/doc/pylb/"
for prog in pylb pylbctl; do
    "$stage$prefix/bin/python" -m pylb.manpage "$prog" | gzip -9n > "$stage/usr/share/man/man8/$prog.8.gz"
done

# The DPDK runtime: what the extension links, as packages.
so=$(ls "$stage$prefix"/lib/python3*/site-packages/pylb/_native*.so)
libs=$(ldd "$so" | awk '$3 ~ /^\// {print $3}' | xargs -r readlink -f |
       xargs -r dpkg -S 2>/dev/null | cut -d: -f1 | sort -u | grep -v '^libc6$' || true)
depends="python3 (>= 3.11), python3 (<< 3.12), iproute2, librte-mempool-ring23, librte-bus-vdev23"
for p in $libs; do depends="$depends, $p"; done
size=$(du -sk "$stage" --exclude=DEBIAN | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: pylb
Version: $version
Architecture: $arch
Maintainer: pylb authors <pylb@localhost>
Installed-Size: $size
Depends: $depends
Recommends: dpdk, librte-net-tap23, librte-net-null23, librte-net-ring23, librte-net-pcap23, librte-net-bond23, bird2
Section: net
Priority: optional
Description: L3/L4 load-balancer appliance on DPDK
 A DPDK poll-mode dataplane (routing, L3 VIPs, L4 NAT, FullNAT, DR and
 tunnels, SYN cookies, connection sync) managed by a Python gRPC service
 and the pylbctl command. Run one appliance per instance with
 systemctl start pylb@INSTANCE (its files in /etc/pylb/INSTANCE/).
CONTROL
cat > "$stage/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ "$1" = purge ]; then rm -rf /opt/pylb; fi
POSTRM
chmod 0755 "$stage/DEBIAN/postrm"
mkdir -p "$out"
deb="$out/pylb_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
