"""Writes kernel.efi: a minimal, deterministic PE32+ EFI image for measurement tests."""
import struct

FA = 0x200
dos = bytearray(0x80)
dos[0:2] = b"MZ"
struct.pack_into("<I", dos, 0x3C, 0x80)
coff = struct.pack("<HHIIIHH", 0x8664, 2, 0, 0, 0, 240, 0x0206)
opt = bytearray(240)
struct.pack_into("<HBB", opt, 0, 0x20B, 1, 0)
struct.pack_into("<III", opt, 4, 0x200, 0x200, 0)  # SizeOfCode, InitData, UninitData
struct.pack_into("<II", opt, 16, 0x1000, 0x1000)  # AddressOfEntryPoint, BaseOfCode
struct.pack_into("<II", opt, 32, 0x1000, FA)  # SectionAlignment, FileAlignment
struct.pack_into("<II", opt, 56, 0x3000, 0x400)  # SizeOfImage, SizeOfHeaders
struct.pack_into("<I", opt, 64, 0x12345678)  # CheckSum (not hashed)
struct.pack_into("<HH", opt, 68, 10, 0)  # Subsystem: EFI application
struct.pack_into("<I", opt, 108, 16)  # NumberOfRvaAndSizes; directory 4 (certificates) stays zero


def sec(name, va, size, ptr, ch):
    return name.ljust(8, b"\0") + struct.pack("<IIIIIIHHI", size, va, size, ptr, 0, 0, 0, 0, ch)


secs = sec(b".text", 0x1000, 0x200, 0x400, 0x60000020) + sec(b".data", 0x2000, 0x200, 0x600, 0xC0000040)
hdr = (bytes(dos) + b"PE\0\0" + coff + bytes(opt) + secs).ljust(0x400, b"\0")
text = bytes((i * 7 + 3) & 0xFF for i in range(0x200))
data = b"veil test kernel".ljust(0x200, b"\x5a")
open("kernel.efi", "wb").write(hdr + text + data + b"TRAILING-BYTES!!")
