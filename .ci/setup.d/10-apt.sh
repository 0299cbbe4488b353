#!/usr/bin/env bash
# Debian packages the tests use: Debian's OVMF build (SNP/TDX measurement tests compare
# against it), cpio (initrd listing check), QEMU (the measured image is booted by
# tests/image_boot.rs) and xz (reading the kernel modules' dependencies).
set -euo pipefail
if dpkg -s ovmf cpio qemu-system-x86 xz-utils >/dev/null 2>&1; then
    echo "ovmf, cpio, qemu-system-x86 and xz-utils already installed"
    exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    ovmf cpio qemu-system-x86 xz-utils >/dev/null
