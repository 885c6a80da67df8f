"""A task's file edits, checked before they run (drivers.claims.check_edit, the task's PreToolUse
hook): which it lets through, and how it says no."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers import claims


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A task's worktree (task 4), next to the main checkout and another task's worktree."""
    path = tmp_path / "repo" / ".worktrees" / "4"
    (path / "src").mkdir(parents=True)
    (path / ".git").write_text("gitdir: elsewhere\n")
    return path


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return claims.store_path(tmp_path / "state", tmp_path / "repo")


def edit(path: str | Path, *, cwd: str | Path | None = None, key: str = "file_path") -> dict:
    call: dict = {"tool_name": "Write", "tool_input": {key: str(path), "content": "x"}}
    if cwd is not None:
        call["cwd"] = str(cwd)
    return call


def decide(call: dict, store: Path, root: Path, task: int = 4) -> tuple[int, str]:
    """(0, "") when the edit may run, (2, reason) when it is refused: what the hook answers the CLI."""
    refusal = claims.check_edit(call.get("tool_input"), cwd=call.get("cwd"), store=store, task=task, root=root)
    return (0, "") if refusal is None else (2, refusal.reason)


# ---------------------------------------------------------------------------------------
# decide()


def test_a_path_inside_the_worktree_is_allowed_and_now_held(store: Path, root: Path) -> None:
    assert decide(edit(root / "src" / "app.py"), store, root) == (0, "")
    assert claims.held_by(store, task=4) == ["src/app.py"]
    assert claims.claim(store, task=5, paths=["src/app.py"])[0].task == 4


@pytest.mark.parametrize("key", ["file_path", "notebook_path", "path"])
def test_every_path_key_of_the_edit_tools_is_read(store: Path, root: Path, key: str) -> None:
    assert decide(edit(root / "nb.ipynb", key=key), store, root) == (0, "")
    assert claims.held_by(store, task=4) == ["nb.ipynb"]


@pytest.mark.parametrize("where", ["main checkout", "other task", "elsewhere"])
def test_a_path_outside_the_worktree_is_refused_naming_the_worktree(
    store: Path, root: Path, tmp_path: Path, where: str
) -> None:
    target = {
        "main checkout": tmp_path / "repo" / "src" / "app.py",
        "other task": tmp_path / "repo" / ".worktrees" / "41" / "app.py",  # same prefix as ".../4"
        "elsewhere": Path("/etc/passwd"),
    }[where]
    code, reason = decide(edit(target), store, root)
    assert code == 2
    assert str(target) in reason and str(root) in reason
    assert claims.held_by(store, task=4) == []


def test_files_inside_git_are_refused(store: Path, root: Path) -> None:
    for target in (root / ".git", root / ".git" / "hooks" / "pre-commit"):
        code, reason = decide(edit(target), store, root)
        assert code == 2 and ".git" in reason
    assert claims.held_by(store, task=4) == []
    assert decide(edit(root / "src" / ".gitignore"), store, root) == (0, "")  # only the .git folder itself


def test_relative_paths_are_resolved_against_the_call_s_cwd(store: Path, root: Path) -> None:
    assert decide(edit("util.py", cwd=root / "src"), store, root) == (0, "")
    assert decide(edit("./docs/../README.md", cwd=root), store, root) == (0, "")
    assert decide(edit("top.py"), store, root) == (0, "")  # no cwd: the worktree
    assert claims.held_by(store, task=4) == ["README.md", "src/util.py", "top.py"]


@pytest.mark.parametrize("raw", ["../3/app.py", "src/../../../main.py", "../../../../../etc/passwd"])
def test_dot_dot_escapes_are_refused(store: Path, root: Path, raw: str) -> None:
    code, reason = decide(edit(raw, cwd=root), store, root)
    assert code == 2 and str(root) in reason
    code, _ = decide(edit(root / raw), store, root)
    assert code == 2
    assert claims.held_by(store, task=4) == []


def test_a_relative_path_from_a_cwd_outside_the_worktree_is_refused(store: Path, root: Path, tmp_path: Path) -> None:
    assert decide(edit("app.py", cwd=tmp_path / "repo"), store, root)[0] == 2


def test_a_path_held_by_another_task_is_refused_with_its_number_and_title(store: Path, root: Path) -> None:
    claims.register(store, task=7, title="Rename the settings")
    claims.claim(store, task=7, paths=["src/settings.py"])

    code, reason = decide(edit(root / "src" / "settings.py"), store, root)
    assert code == 2
    assert "src/settings.py" in reason and "#7" in reason and "Rename the settings" in reason
    assert claims.held_by(store, task=4) == []
    assert claims.take_blocked(store, task=4) == [claims.Holder("src/settings.py", 7, "Rename the settings")]


@pytest.mark.parametrize(
    "call",
    [
        {},
        {"tool_name": "Bash", "tool_input": {"command": "ls"}},
        {"tool_input": None},
        {"tool_input": {"file_path": ""}},
        {"tool_input": {"file_path": None}},
        {"tool_input": {"file_path": 12}},
    ],
)
def test_a_call_without_a_path_is_allowed(store: Path, root: Path, call: dict) -> None:
    assert decide(call, store, root) == (0, "")
    assert claims.held_by(store, task=4) == []


def test_a_worktree_reached_through_a_symlink_is_still_the_worktree(store: Path, root: Path, tmp_path: Path) -> None:
    """The CLI reports real paths (its cwd is resolved) while the root may be configured through a symlink."""
    (tmp_path / "alias").symlink_to(tmp_path / "repo")
    alias_root = tmp_path / "alias" / ".worktrees" / "4"

    assert decide(edit(root / "src" / "a.py", cwd=root), store, alias_root) == (0, "")
    assert decide(edit(alias_root / "src" / "b.py"), store, root) == (0, "")
    assert decide(edit("c.py", cwd=alias_root), store, root) == (0, "")
    assert claims.held_by(store, task=4) == ["c.py", "src/a.py", "src/b.py"]


def test_a_symlink_inside_the_worktree_does_not_lead_out_of_it(store: Path, root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    code, reason = decide(edit(root / "escape" / "x.py"), store, root)
    assert code == 2 and str(root) in reason
    assert claims.held_by(store, task=4) == []
