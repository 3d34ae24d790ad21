"""`ggufrope plan`: recommended RoPE settings for a target context, their effect per dimension
pair (computed as llama.cpp resolves them), every dialect that applies them, and memory.

numpy is imported only when a plan is made; matplotlib only by `plot`.
"""
from ggufrope.planning.dialects import build_dialects, patch_argv, split_by_reader
from ggufrope.planning.recommend import METHODS, Choice, ModelFacts, Plan, read_facts, recommend, require_rope
from ggufrope.planning.report import make_plan, memory, plan_report

__all__ = ["METHODS", "Choice", "ModelFacts", "Plan", "build_dialects", "make_plan", "memory",
           "patch_argv", "plan_report", "read_facts", "recommend", "require_rope", "split_by_reader"]
