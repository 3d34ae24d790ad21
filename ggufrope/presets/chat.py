"""The python engine: llama-cpp-python in this process, streaming a chat. The terminal loop is
the CLI's; this holds the model and the conversation."""
from __future__ import annotations

from typing import Any, Callable, Iterator

from ggufrope.errors import EngineError


def is_jinja(template: str | None) -> bool:
    return bool(template) and ("{%" in template or "{{" in template)


class ChatSession:
    def __init__(self, kwargs: dict[str, Any], *, system_prompt: str | None = None,
                 chat_template: str | None = None, completion_kwargs: dict[str, Any] | None = None,
                 n_predict: int = -1, factory: Callable[..., Any] | None = None):
        if factory is None:
            from llama_cpp import Llama as factory  # noqa: N813 (imported only when a chat starts)
        try:
            self.llm = factory(**kwargs)
        except (ValueError, RuntimeError, OSError) as e:
            raise EngineError(f"{kwargs.get('model_path')}: llama-cpp-python could not load it: {e}") from None
        if is_jinja(chat_template):
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
            tok = self.llm
            eos = tok.detokenize([tok.token_eos()]).decode("utf-8", "replace")
            bos = tok.detokenize([tok.token_bos()]).decode("utf-8", "replace")
            self.llm.chat_handler = Jinja2ChatFormatter(chat_template, eos_token=eos, bos_token=bos).to_chat_handler()
        self.messages: list[dict[str, str]] = [{"role": "system", "content": system_prompt}] if system_prompt else []
        self.completion_kwargs = dict(completion_kwargs or {})
        if n_predict != -1:
            self.completion_kwargs["max_tokens"] = n_predict
        else:
            self.completion_kwargs["max_tokens"] = None

    def send(self, text: str) -> Iterator[str]:
        """Stream the reply to text, piece by piece; the conversation keeps both."""
        self.messages.append({"role": "user", "content": text})
        reply: list[str] = []
        for chunk in self.llm.create_chat_completion(messages=self.messages, stream=True, **self.completion_kwargs):
            delta = chunk["choices"][0].get("delta", {}).get("content")
            if delta:
                reply.append(delta)
                yield delta
        self.messages.append({"role": "assistant", "content": "".join(reply)})

    def close(self) -> None:
        close = getattr(self.llm, "close", None)
        if close:
            close()
