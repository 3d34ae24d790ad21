"""ggufrope: RoPE and long-context settings for GGUF models and llama.cpp."""

__version__ = "0.1.0"
