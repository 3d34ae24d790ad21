"""The words a user may write for yes and no, read the same way everywhere: `patch --set
KEY=bool:WORD`, preset fields given as text (environment, command line) and imported llama.cpp
INI presets (llama.cpp's own is_truthy/is_falsey in common/arg.cpp take on/enabled/true/1 and
off/disabled/false/0; yes/no are ours). A leaf: it imports nothing from ggufrope."""
from __future__ import annotations

TRUE_WORDS = ("true", "1", "yes", "on", "enabled")
FALSE_WORDS = ("false", "0", "no", "off", "disabled")


def parse_bool(text: str) -> bool | None:
    """True or False for a yes/no word (any case, spaces around ignored); None for any other text."""
    t = text.strip().lower()
    if t in TRUE_WORDS:
        return True
    if t in FALSE_WORDS:
        return False
    return None
