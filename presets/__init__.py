"""ggufrope's built-in presets (installed as the package ggufrope.builtin_presets; the TOML files
are package data). `ggufrope presets list` shows them; `ggufrope presets show NAME` explains one."""
