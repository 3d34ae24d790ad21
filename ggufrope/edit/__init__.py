"""Edit GGUF metadata safely: plan, then apply in place (journaled) or as a streaming copy."""

from ggufrope.edit.api import patch_file, recover_file, restore_file
from ggufrope.edit.plan import PAD_KEY, Change, EditPlan, RemoveKey, SetRaw, SetValue, plan_edit

__all__ = ["PAD_KEY", "Change", "EditPlan", "RemoveKey", "SetRaw", "SetValue", "patch_file",
           "plan_edit", "recover_file", "restore_file"]
