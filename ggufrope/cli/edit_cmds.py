"""`ggufrope patch | restore | recover | diff`."""
from __future__ import annotations

from typing import List, Optional

import typer

from ggufrope.cli.output import Progress, echo, note, print_json, table, warn
from ggufrope.cli.render import render_plan
from ggufrope.edit import EditPlan, patch_file, recover_file, restore_file
from ggufrope.edit.requests import Assignment, PatchRequest, request_ops
from ggufrope.errors import UsageError
from ggufrope.models import refuse_in_place, resolve
from ggufrope.report import metadata_diff
from ggufrope.settings import RopeSettings
from ggufrope.settings.hf import load_hf_config, load_rope_json

commands = typer.Typer()  # top-level commands; cli/app.py mounts them


def report_plan(plan: EditPlan, notes: list[str], dest: str, dry_run: bool, as_json: bool) -> None:
    if as_json:
        print_json({"path": plan.path, "output": dest, "mode": plan.mode, "dry_run": dry_run,
                    "old_data_offset": plan.old_data_offset, "new_data_offset": plan.new_data_offset,
                    "changes": [c.__dict__ for c in plan.changes],
                    "unrecorded": [c.key for c in plan.unrecorded], "notes": notes})
        return
    if plan.unrecorded and not dry_run:
        was = ", ".join(f"{c.key} was {c.before if c.before is not None else '(absent)'}" for c in plan.unrecorded)
        warn(f"no spare header space for the undo record, so `ggufrope restore` cannot undo this edit "
             f"({was}); write a copy once with -o OUT to get reserved header space")
    for n in notes:
        warn(n) if "does not read" in n or "ignore" in n or "changes nothing" in n else note(n)
    echo(render_plan(plan, dest, dry_run))


@commands.command("patch")
def patch_cmd(
    model: str = typer.Argument(..., help="GGUF file to edit (the first split of a split model)."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Write a patched copy here."),
    in_place: bool = typer.Option(False, "--in-place", help="Edit MODEL itself (journaled, undoable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan; write nothing."),
    rope_scaling: Optional[str] = typer.Option(None, "--rope-scaling", help="none, linear, yarn or longrope."),
    rope_scale: Optional[float] = typer.Option(None, "--rope-scale", help="Context scaling factor (rope.scaling.factor)."),
    rope_freq_base: Optional[float] = typer.Option(None, "--rope-freq-base", help="RoPE base frequency."),
    yarn_orig_ctx: Optional[int] = typer.Option(None, "--yarn-orig-ctx", help="Original (trained) context of YaRN."),
    yarn_ext_factor: Optional[float] = typer.Option(None, "--yarn-ext-factor", help="YaRN extrapolation mix factor."),
    yarn_attn_factor: Optional[float] = typer.Option(None, "--yarn-attn-factor", help="YaRN magnitude scaling factor."),
    yarn_beta_fast: Optional[float] = typer.Option(None, "--yarn-beta-fast", help="YaRN low correction dim (beta fast)."),
    yarn_beta_slow: Optional[float] = typer.Option(None, "--yarn-beta-slow", help="YaRN high correction dim (beta slow)."),
    yarn_log_multiplier: Optional[float] = typer.Option(None, "--yarn-log-multiplier", help="YaRN mscale log multiplier."),
    ctx: Optional[int] = typer.Option(None, "--ctx", help="context_length to write (default: factor x original)."),
    set_: List[str] = typer.Option([], "--set", help="KEY=TYPE:VALUE, as llama.cpp's --override-kv (repeatable)."),
    remove: List[str] = typer.Option([], "--remove", help="Remove KEY (repeatable)."),
    from_hf_config: Optional[str] = typer.Option(None, "--from-hf-config",
                                                 help="Take rope_scaling/rope_theta from a Hugging Face config.json."),
    rope_json: Optional[str] = typer.Option(None, "--rope-json",
                                            help='An HF rope_scaling dict, e.g. \'{"type":"yarn","factor":4.0,'
                                                 '"original_max_position_embeddings":32768}\'.'),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
) -> None:
    """Change RoPE settings (flags named as llama.cpp names them) or any key."""
    try:
        if output and in_place:
            raise UsageError("give either -o OUT or --in-place, not both")
        if ctx is not None and ctx <= 0:
            raise UsageError(f"--ctx must be positive, not {ctx}")
        rope = RopeSettings(scaling_type=rope_scaling, scaling_factor=rope_scale, freq_base=rope_freq_base,
                            original_context_length=yarn_orig_ctx, yarn_ext_factor=yarn_ext_factor,
                            yarn_attn_factor=yarn_attn_factor, yarn_beta_fast=yarn_beta_fast,
                            yarn_beta_slow=yarn_beta_slow, yarn_log_multiplier=yarn_log_multiplier)
        if from_hf_config:
            rope = load_hf_config(from_hf_config).merged(rope)
        if rope_json:
            rope = load_rope_json(rope_json).merged(rope)
        req = PatchRequest(rope=rope, ctx=ctx, sets=[Assignment.parse(s) for s in set_], removes=list(remove))
        if req.is_empty():
            raise UsageError("nothing to change: give RoPE flags, --ctx, --set or --remove")
    except UsageError as e:
        raise UsageError(f"{model}: {e}") from None
    path = resolve(model, log=note)
    if in_place and not dry_run:
        refuse_in_place(path)
    notes: list[str] = []

    def ops_for(header):
        ops, n = request_ops(header, req)
        notes.extend(n)
        return ops

    progress = None if as_json else Progress("copying tensor data")
    plan, recovered = patch_file(path, ops_for, out=output, in_place=in_place, dry_run=dry_run,
                                 progress=progress)
    report_plan(plan, recovered + notes, output or path, dry_run, as_json)


@commands.command("restore")
def restore_cmd(
    model: str = typer.Argument(..., help="A GGUF file ggufrope has patched."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Write the restored file here instead."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be restored."),
) -> None:
    """Undo every ggufrope change (the record travels inside the file)."""
    path = resolve(model, log=note)
    if not output and not dry_run:
        refuse_in_place(path)
    plan, notes = restore_file(path, out=output, dry_run=dry_run, progress=Progress("copying tensor data"))
    report_plan(plan, notes, output or path, dry_run, False)


@commands.command("recover")
def recover_cmd(
    models: List[str] = typer.Argument(..., help="Files whose edit may have been interrupted."),
    discard: bool = typer.Option(False, "--discard",
                                 help="Drop the journal without writing into the file (for a journal "
                                      "that no longer matches it, e.g. the file was replaced)."),
) -> None:
    """Roll back an interrupted in-place edit and remove temp files of killed copies. A journal
    is rolled back only into the file it was written for, and only while the journaled bytes
    are still the old or the new ones; otherwise it is kept and this command fails."""
    for m in models:
        notes = recover_file(m, discard=discard)
        for n in notes:
            echo(n)
        if not notes:
            echo(f"{m}: nothing to recover")


@commands.command("diff")
def diff_cmd(
    a: str = typer.Argument(..., help="First GGUF file."),
    b: str = typer.Argument(..., help="Second GGUF file."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Metadata differences between two files (exit 1 when they differ, like diff)."""
    rows = metadata_diff(resolve(a), resolve(b))
    if as_json:
        print_json(rows)
    elif not rows:
        echo("metadata identical")
    else:
        echo(table([[r["key"], "-" if r["a"] is None else r["a"], "|", "-" if r["b"] is None else r["b"]]
                    for r in rows], indent=""))
    raise typer.Exit(1 if rows else 0)
