"""A GGUF header codec. It reads and writes key/values and tensor infos, never tensor data,
and knows nothing of RoPE, presets or the CLI."""

from ggufrope.gguf.constants import GGMLType, ValueType
from ggufrope.gguf.reader import Field, GGUFHeader, TensorInfo, read_header
from ggufrope.gguf.encode import encode_kv, encode_value

__all__ = [
    "Field", "GGMLType", "GGUFHeader", "TensorInfo", "ValueType",
    "encode_kv", "encode_value", "read_header",
]
