"""Read a GGUF header into an index of fields; decode values only when asked.

Layout (ggml/docs/gguf.md, "File Structure"; ggml/src/gguf.cpp gguf_init_from_reader):

    magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
    n_kv  x  (string key | u32 type | value)
    n_tensors x (string name | u32 n_dims | n_dims x u64 ne | u32 ggml_type | u64 offset)
    padding to general.alignment | tensor data

string = u64 length + bytes; array value = u32 item type + u64 count + items.
Versions 2 and 3 share this layout (v1 used 32-bit counts and is refused, as ggml does).
Byte order is the file's own: a big-endian file reads its version as 0x03000000.

The file is memory-mapped and walked once. Skipping a string array reads only the
length prefixes, so a 400k-token vocabulary costs no Python objects.
"""
from __future__ import annotations

import mmap
import os
import stat
import struct
from dataclasses import dataclass
from typing import Any

from ggufrope.errors import FileAccessError, GGUFFormatError, file_access_error
from ggufrope.gguf.constants import (
    ALIGNMENT_KEY, GGML_BLOCK, GGML_MAX_DIMS, GGML_MAX_NAME, GGML_TYPE_COUNT, GGMLType,
    GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_ARRAY_ELEMENTS, MAX_STRING_LENGTH,
    SCALAR_FORMAT, SCALAR_SIZE, ValueType, align_up,
)

_VALID_TYPES = frozenset(int(t) for t in ValueType)
# The spec allows arrays of arrays (ggml refuses them); bound the depth so a hostile file
# cannot drive the recursive walk into RecursionError.
MAX_NESTING = 32


@dataclass(frozen=True, slots=True)
class Field:
    """One key/value entry: where it is, not what it holds."""

    key: str
    vtype: ValueType
    start: int          # offset of the entry (its key's length prefix)
    value_start: int    # offset of the value (for arrays: of the first item)
    end: int            # offset just past the entry
    item_type: ValueType | None = None   # arrays only
    count: int = 1                       # arrays: number of items


@dataclass(frozen=True, slots=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]   # ggml order: ne[0] (row length) first
    ggml_type: int
    offset: int              # relative to the start of the data section

    @property
    def type_name(self) -> str:
        try:
            return GGMLType(self.ggml_type).name
        except ValueError:
            return f"type{self.ggml_type}"

    @property
    def nbytes(self) -> int:
        blck, size = GGML_BLOCK[GGMLType(self.ggml_type)]
        n = 1
        for d in self.shape:
            n *= d
        return n // blck * size


class _Cursor:
    """Bounds-checked reads over the mapped header; every short read names the offset."""

    __slots__ = ("buf", "size", "path", "bo", "u32", "u64", "i64")

    def __init__(self, buf, size: int, path: str, byteorder: str):
        self.buf = buf
        self.size = size
        self.path = path
        self.bo = byteorder
        self.u32 = struct.Struct(byteorder + "I")
        self.u64 = struct.Struct(byteorder + "Q")
        self.i64 = struct.Struct(byteorder + "q")

    def fail(self, off: int, what: str) -> GGUFFormatError:
        return GGUFFormatError(f"{self.path}: {what} at offset 0x{off:x}")

    def need(self, off: int, n: int, what: str) -> None:
        if n < 0 or off + n > self.size:
            raise self.fail(off, f"{what} runs past the end of the file (truncated download?)")

    def read_u32(self, off: int, what: str) -> int:
        self.need(off, 4, what)
        return self.u32.unpack_from(self.buf, off)[0]

    def read_u64(self, off: int, what: str) -> int:
        self.need(off, 8, what)
        return self.u64.unpack_from(self.buf, off)[0]

    def read_string(self, off: int, what: str) -> tuple[bytes, int]:
        n = self.read_u64(off, what + " length")
        if n > MAX_STRING_LENGTH:
            raise self.fail(off, f"{what} length {n} exceeds the GGUF maximum")
        self.need(off + 8, n, what)
        return bytes(self.buf[off + 8: off + 8 + n]), off + 8 + n

    def skip_value(self, off: int, vtype: int, key: str, depth: int = 0) -> tuple[int, int | None, int]:
        """Return (end offset, item type, count) of a value starting at off."""
        size = SCALAR_SIZE.get(vtype)  # type: ignore[call-overload]
        if size is not None:
            self.need(off, size, f"value of {key!r}")
            return off + size, None, 1
        if vtype == ValueType.STRING:
            n = self.read_u64(off, f"string value of {key!r}")
            if n > MAX_STRING_LENGTH:
                raise self.fail(off, f"string value of {key!r} has absurd length {n}")
            self.need(off + 8, n, f"string value of {key!r}")
            return off + 8 + n, None, 1
        if vtype == ValueType.ARRAY:
            item = self.read_u32(off, f"array item type of {key!r}")
            count = self.read_u64(off + 4, f"array length of {key!r}")
            off += 12
            if item not in _VALID_TYPES:
                raise self.fail(off - 12, f"array {key!r} has unknown item type {item}")
            if count > MAX_ARRAY_ELEMENTS:
                raise self.fail(off - 8, f"array {key!r} has absurd length {count}")
            if item == ValueType.ARRAY and depth >= MAX_NESTING:
                raise self.fail(off - 12, f"array {key!r} is nested too deeply (more than {MAX_NESTING} levels)")
            return self._skip_items(off, item, count, key, depth), ValueType(item), count
        raise self.fail(off - 4, f"key {key!r} has unknown value type {vtype}")

    def _skip_items(self, off: int, item: int, count: int, key: str, depth: int = 0) -> int:
        size = SCALAR_SIZE.get(item)  # type: ignore[call-overload]
        if size is not None:
            self.need(off, size * count, f"array {key!r} of {count} items")
            return off + size * count
        if item == ValueType.STRING:
            # each string takes at least its 8-byte length: refuse absurd counts before looping
            self.need(off, 8 * count, f"string array {key!r} of {count} items")
            unpack = self.u64.unpack_from
            buf, limit = self.buf, self.size - 8
            for _ in range(count):
                if off > limit:
                    raise self.fail(off, f"string array {key!r} runs past the end of the file")
                off += 8 + unpack(buf, off)[0]
            if off > self.size:
                raise self.fail(off, f"string array {key!r} runs past the end of the file")
            return off
        # nested array (allowed by the spec; ggml itself refuses them); each takes >= 12 bytes
        self.need(off, 12 * count, f"array {key!r} of {count} arrays")
        for _ in range(count):
            off, _, _ = self.skip_value(off, ValueType.ARRAY, key, depth + 1)
        return off


@dataclass(eq=False, repr=False)
class GGUFHeader:
    """The parsed header of one GGUF file: fields (in file order) and tensor infos."""

    path: str
    _buf: Any           # the file's bytes (an mmap, or bytes for a buffer); None once closed
    file_size: int
    byteorder: str
    version: int
    fields: dict[str, Field]
    tensors: list[TensorInfo]
    kv_start: int
    kv_end: int
    infos_end: int
    alignment: int
    data_offset: int

    # -- raw access -------------------------------------------------------
    def raw(self, start: int, end: int) -> bytes:
        return bytes(self._buf[start:end])

    def view(self, start: int, end: int) -> memoryview:
        """Zero-copy bytes of the header (valid until close)."""
        return memoryview(self._buf)[start:end]

    def raw_entry(self, key: str) -> bytes:
        f = self.fields[key]
        return self.raw(f.start, f.end)

    @property
    def tensor_info_bytes(self) -> bytes:
        return self.raw(self.kv_end, self.infos_end)

    @property
    def header_bytes(self) -> bytes:
        return self.raw(0, self.data_offset)

    @property
    def data_size(self) -> int:
        return self.file_size - self.data_offset

    # -- values -----------------------------------------------------------
    def __contains__(self, key: str) -> bool:
        return key in self.fields

    def get(self, key: str, default: Any = None) -> Any:
        f = self.fields.get(key)
        return default if f is None else self.value(f)

    def value(self, field: Field | str) -> Any:
        f = self.fields[field] if isinstance(field, str) else field
        if f.vtype == ValueType.ARRAY:
            return self._decode_array(f.value_start, f.item_type, f.count)[0]
        return self._decode_scalar(f.value_start, f.vtype)[0]

    def _decode_scalar(self, off: int, vtype: int) -> tuple[Any, int]:
        if vtype == ValueType.STRING:
            n = struct.unpack_from(self.byteorder + "Q", self._buf, off)[0]
            return bytes(self._buf[off + 8: off + 8 + n]).decode("utf-8", "surrogateescape"), off + 8 + n
        fmt = SCALAR_FORMAT[ValueType(vtype)]
        return struct.unpack_from(self.byteorder + fmt, self._buf, off)[0], off + SCALAR_SIZE[ValueType(vtype)]

    def _decode_array(self, off: int, item: int, count: int) -> tuple[list, int]:
        if item in SCALAR_FORMAT:
            size = SCALAR_SIZE[ValueType(item)]
            vals = struct.unpack_from(f"{self.byteorder}{count}{SCALAR_FORMAT[ValueType(item)]}", self._buf, off)
            return list(vals), off + size * count
        out = []
        for _ in range(count):
            if item == ValueType.ARRAY:
                sub_item, sub_count = struct.unpack_from(self.byteorder + "IQ", self._buf, off)
                v, off = self._decode_array(off + 12, sub_item, sub_count)
            else:
                v, off = self._decode_scalar(off, item)
            out.append(v)
        return out, off

    def close(self) -> None:
        buf, self._buf = self._buf, None
        if isinstance(buf, mmap.mmap):
            try:
                buf.close()
            except BufferError:
                pass  # views of it still live (e.g. in an exception's frames): unmapped when they go

    def __enter__(self) -> GGUFHeader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open_map(path: str) -> tuple[Any, int]:
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (regular files ignore it)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise file_access_error(path, e, hint=", not a GGUF file" if isinstance(e, IsADirectoryError) else "") \
            from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileAccessError(f"{path}: not a regular file")
        if st.st_size == 0:
            return b"", 0
        try:
            return mmap.mmap(fd, 0, access=mmap.ACCESS_READ), st.st_size
        except (OSError, ValueError) as e:
            raise FileAccessError(f"{path}: cannot map file ({e})") from None
    finally:
        os.close(fd)


def read_header(path: str | os.PathLike, check_data: bool = True) -> GGUFHeader:
    """Parse the header of the GGUF file at path. Raises GGUFFormatError / FileAccessError."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise FileAccessError(f"{path}: is a directory, not a GGUF file")
    buf, size = _open_map(path)
    try:
        return parse_header(buf, size, path, check_data)
    except BaseException:
        if isinstance(buf, mmap.mmap):
            buf.close()
        raise


def _tensor_infos(cur: _Cursor, off: int, n_tensors: int) -> tuple[list[TensorInfo], int]:
    buf = cur.buf
    tensors: list[TensorInfo] = []
    names: set[str] = set()
    u64 = cur.u64
    for i in range(n_tensors):
        start = off
        raw_name, off = cur.read_string(off, f"name of tensor #{i}")
        name = raw_name.decode("utf-8", "surrogateescape")
        if len(raw_name) >= GGML_MAX_NAME:
            raise cur.fail(start, f"tensor name {name[:80]!r} is too long ({len(raw_name)} >= {GGML_MAX_NAME})")
        if name in names:
            raise cur.fail(start, f"duplicate tensor name {name!r}")
        names.add(name)
        n_dims = cur.read_u32(off, f"dimension count of tensor {name!r}")
        if n_dims > GGML_MAX_DIMS:
            raise cur.fail(off, f"tensor {name!r} has {n_dims} dimensions (max {GGML_MAX_DIMS})")
        off += 4
        cur.need(off, 8 * n_dims + 12, f"info of tensor {name!r}")
        shape = tuple(cur.i64.unpack_from(buf, off + 8 * j)[0] for j in range(n_dims))
        off += 8 * n_dims
        if any(d < 0 for d in shape):
            raise cur.fail(start, f"tensor {name!r} has a negative dimension {shape}")
        # ggml checks every running product against INT64_MAX, so a zero dimension after an
        # overflowing prefix is still refused (gguf.cpp gguf_init_from_reader)
        nel = 1
        for d in shape:
            nel *= d
            if nel >= 2**63:
                raise cur.fail(start, f"tensor {name!r} has too many elements {shape}")
        gtype = cur.u32.unpack_from(buf, off)[0]
        if gtype >= GGML_TYPE_COUNT or gtype not in GGMLType._value2member_map_:
            raise cur.fail(off, f"tensor {name!r} has unknown ggml type {gtype}")
        blck = GGML_BLOCK[GGMLType(gtype)][0]
        row = shape[0] if shape else 1
        if row % blck:
            raise cur.fail(start, f"tensor {name!r} row of {row} is not a multiple of the "
                                  f"{GGMLType(gtype).name} block size {blck}")
        offset = u64.unpack_from(buf, off + 4)[0]
        off += 12
        tensors.append(TensorInfo(name, shape, gtype, offset))
    return tensors, off


def parse_tensor_infos(buf, offset: int, n_tensors: int, byteorder: str = "<",
                       path: str = "<buffer>") -> tuple[list[TensorInfo], int]:
    """Only the tensor-info table starting at offset: (tensors, offset past the table).
    Used to re-read a header just written without walking its key/values again."""
    return _tensor_infos(_Cursor(buf, len(buf), path, byteorder), offset, n_tensors)


def parse_header(buf, size: int, path: str = "<buffer>", check_data: bool = True) -> GGUFHeader:
    """Parse a header from a buffer. check_data also requires the tensor data to be present
    (ggml's reader does not check that; llama.cpp's loader does)."""
    version, byteorder, n_tensors, n_kv = _preamble(buf, size, path)
    cur = _Cursor(buf, size, path, byteorder)
    kv_start = 24
    fields, kv_end = _key_values(cur, kv_start, n_kv)
    alignment = _alignment(cur, fields)
    tensors, infos_end = _tensor_infos(cur, kv_end, n_tensors)
    data_offset = align_up(infos_end, alignment) if n_tensors else infos_end
    if data_offset > size:
        raise GGUFFormatError(f"{path}: header padding runs past the end of the file (truncated download?)")
    _check_data_layout(path, tensors, alignment, data_offset, size if check_data else None)
    return GGUFHeader(path, buf, size, byteorder, version, fields, tensors, kv_start,
                      kv_end, infos_end, alignment, data_offset)


def _preamble(buf, size: int, path: str) -> tuple[int, str, int, int]:
    """(version, byte order, tensor count, key/value count) from the first 24 bytes."""
    if size < 4 or bytes(buf[0:4]) != GGUF_MAGIC:
        got = bytes(buf[0:4]) if size else b""
        raise GGUFFormatError(f"{path}: not a GGUF file (magic {got!r}, expected b'GGUF')")
    if size < 24:
        raise GGUFFormatError(f"{path}: header runs past the end of the file (truncated download?)")
    (version,) = struct.unpack_from("<I", buf, 4)
    byteorder = "<"
    if version & 0xFFFF == 0:
        version = struct.unpack_from(">I", buf, 4)[0]
        byteorder = ">"
    if version == 1:
        raise GGUFFormatError(f"{path}: GGUF version 1 is no longer supported (convert it with a newer tool)")
    if version not in (2, 3):
        raise GGUFFormatError(f"{path}: unsupported GGUF version {version}")
    n_tensors, n_kv = struct.unpack_from(byteorder + "qq", buf, 8)
    # each kv takes >= 13 bytes and each tensor info >= 25: counts beyond that are absurd
    if n_kv < 0 or n_kv * 13 > size:
        raise GGUFFormatError(f"{path}: absurd key/value count {n_kv} for a {size}-byte file")
    if n_tensors < 0 or n_tensors * 25 > size:
        raise GGUFFormatError(f"{path}: absurd tensor count {n_tensors} for a {size}-byte file")
    return version, byteorder, n_tensors, n_kv


def _key_values(cur: _Cursor, off: int, n_kv: int) -> tuple[dict[str, Field], int]:
    """The index of the key/value section (nothing decoded): (fields in file order, offset past it)."""
    fields: dict[str, Field] = {}
    for i in range(n_kv):
        start = off
        raw_key, off = cur.read_string(off, f"key #{i}")
        try:
            key = raw_key.decode("utf-8")
        except UnicodeDecodeError:
            raise cur.fail(start, f"key #{i} is not valid UTF-8") from None
        if not key:
            raise cur.fail(start, f"key #{i} is empty")
        if key in fields:
            raise cur.fail(start, f"duplicate key {key!r}")
        vtype = cur.read_u32(off, f"type of {key!r}")
        if vtype not in _VALID_TYPES:
            raise cur.fail(off, f"key {key!r} has unknown value type {vtype}")
        off += 4
        end, item, count = cur.skip_value(off, vtype, key)
        value_start = off + 12 if vtype == ValueType.ARRAY else off
        fields[key] = Field(key, ValueType(vtype), start, value_start, end, item, count)
        off = end
    return fields, off


def _alignment(cur: _Cursor, fields: dict[str, Field]) -> int:
    af = fields.get(ALIGNMENT_KEY)
    if af is None:
        return GGUF_DEFAULT_ALIGNMENT
    if af.vtype != ValueType.UINT32:
        raise cur.fail(af.start, f"{ALIGNMENT_KEY} must be UINT32, not {af.vtype.name}")
    alignment = cur.u32.unpack_from(cur.buf, af.value_start)[0]
    if alignment == 0 or alignment & (alignment - 1):
        raise cur.fail(af.start, f"{ALIGNMENT_KEY} {alignment} is not a power of 2")
    return alignment


def _check_data_layout(path: str, tensors: list[TensorInfo], alignment: int, data_offset: int,
                       size: int | None) -> None:
    """Tensor data offsets as ggml lays them out; with a size, the data must be in the file too."""
    expect = 0
    for t in tensors:
        if t.offset != expect:
            raise GGUFFormatError(f"{path}: tensor {t.name!r} has data offset {t.offset}, expected {expect}")
        expect += align_up(t.nbytes, alignment)
        # ggml sums the padded sizes in size_t and refuses a sum that does not fit
        if expect >= 2**64:
            raise GGUFFormatError(f"{path}: tensor {t.name!r} {t.shape} makes the data section larger "
                                  f"than 2^64 bytes")
    if size is not None and tensors:
        last = tensors[-1]
        if data_offset + last.offset + last.nbytes > size:
            raise GGUFFormatError(
                f"{path}: tensor data ends at {data_offset + last.offset + last.nbytes} but the file "
                f"has {size} bytes (truncated download?)")


def parse_entry(raw: bytes, byteorder: str = "<") -> tuple[str, Any]:
    """(key, value) of one whole key/value entry as a header stores it (e.g. ggufrope's undo
    record keeps such entries): parsed as a one-entry header, so the same checks apply."""
    pre = b"GGUF" + struct.pack(byteorder + "IQQ", 3, 0, 1)
    h = parse_header(pre + raw, len(pre) + len(raw), "<entry>", check_data=False)
    if len(h.fields) != 1 or h.kv_end != len(pre) + len(raw):
        raise GGUFFormatError(f"<entry>: not exactly one key/value entry ({len(raw)} bytes)")
    (key,) = h.fields
    return key, h.value(key)
