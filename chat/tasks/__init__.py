"""Autonomous tasks: the CLI works on a prompt in its own git worktree and branch.

This package's ``__init__`` imports nothing, so the PreToolUse hook (``hook.py``) and the
git module stay free of Django.
"""
