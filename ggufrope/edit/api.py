"""The edit entry points: open, lock, plan, apply. What the CLI and presets call."""
from __future__ import annotations

import os
from typing import Callable

from ggufrope.edit import history, journal
from ggufrope.edit.apply import Progress, apply_copy, apply_inplace, locked
from ggufrope.edit.plan import EditPlan, RemoveKey, SetRaw, plan_edit
from ggufrope.errors import EditError
from ggufrope.gguf import GGUFHeader, read_header
from ggufrope.gguf.splits import first_split, is_split

OpsFor = Callable[[GGUFHeader], list]


def recover_file(path: str, discard: bool = False) -> list[str]:
    """Roll back an interrupted edit of path (discard: drop its journal without writing into
    the file) and remove dead temp files; returns notes. Acts on the real file of a link."""
    notes = []
    msg = journal.recover(path, discard)
    if msg:
        notes.append(msg)
    for p in journal.stale_tmp_files(path):
        try:
            os.unlink(p)
            notes.append(f"{p}: removed the temp file of an interrupted copy")
        except OSError:
            pass
    return notes


def pending_notes(path: str) -> list[str]:
    """What an interrupted edit left beside path, for read-only commands: they report it and
    never write (only `recover` and the edits roll back)."""
    return journal.pending(path)


def _edit_target(path: str) -> str:
    if is_split(path) and first_split(path) != path:
        raise EditError(f"{path}: metadata lives in the first split; edit {first_split(path)}")
    return path


def patch_file(path: str, ops_for: OpsFor, out: str | None = None, in_place: bool = False,
               dry_run: bool = False, record_history: bool = True,
               progress: Progress | None = None) -> tuple[EditPlan, list[str]]:
    """Edit path's metadata. ops_for(header) returns the ops (so they can depend on the file).
    Writes to out (a new file), or path itself when in_place. Returns (plan, notes)."""
    path = _edit_target(os.fspath(path))
    # One rule for links: resolve once, say so, act on the real file (the edit, its journal,
    # the temp file of a copy and `recover` all sit beside it).
    notes = []
    real = os.path.realpath(path)
    if in_place or (out is not None and real == os.path.realpath(out)):
        if real != os.path.abspath(path):
            notes.append(f"{path}: editing {real} through a symlink")
    if out is not None:
        real_out = os.path.realpath(out)
        if real_out == real:
            notes.append(f"-o {out}: is the same file as {path}; editing it in place")
            out, in_place = None, True
        else:
            if real_out != os.path.abspath(out):
                notes.append(f"{out}: writing {real_out} through a symlink")
            out = real_out
    path = real
    if out is None and not in_place and not dry_run:
        raise EditError(f"{path}: say where to write: -o OUT for a patched copy, or --in-place")
    notes += pending_notes(path) if dry_run else recover_file(path)
    with locked(path):
        with read_header(path) as header:
            plan = plan_edit(header, ops_for(header), to_new_file=out is not None,
                             record_history=record_history)
            if dry_run or plan.mode == "noop":
                return plan, notes
            if out is not None:
                if os.path.exists(out):
                    with locked(out):
                        apply_copy(plan, header, out, progress)
                else:
                    apply_copy(plan, header, out, progress)
            elif plan.mode == "inplace":
                apply_inplace(plan, header)
            else:
                apply_copy(plan, header, path, progress, in_place=True)
    return plan, notes


def restore_ops(header: GGUFHeader) -> list:
    hist = history.load(header)
    if not hist:
        raise EditError(f"{header.path}: no ggufrope changes recorded in this file; nothing to restore")
    return [SetRaw(k, raw) for k, raw in hist.items()] + [RemoveKey(history.HISTORY_KEY)]


def restore_file(path: str, out: str | None = None, dry_run: bool = False,
                 progress: Progress | None = None) -> tuple[EditPlan, list[str]]:
    """Undo every ggufrope change recorded in the file (in place unless out is given)."""
    return patch_file(path, restore_ops, out=out, in_place=out is None, dry_run=dry_run,
                      record_history=False, progress=progress)

