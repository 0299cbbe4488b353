#!/usr/bin/env bash
# Debian packages the tests use: Debian's OVMF build (SNP/TDX measurement tests compare
# against it) and cpio (initrd listing check).
set -euo pipefail
if dpkg -s ovmf cpio >/dev/null 2>&1; then
    echo "ovmf and cpio already installed"
    exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ovmf cpio >/dev/null
