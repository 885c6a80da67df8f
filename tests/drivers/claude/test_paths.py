"""Session ids and where the CLI keeps a session's transcript (drivers/claude/paths.py).

The live check that the CLI really writes there is in tests/devtools/test_stub_api.py.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from drivers.claude import encode_project_dir, is_uuid, transcript_path

SID = "0b6f4b52-3c1e-4d7a-9f51-2a1d6c8e9b30"


# A fixed id for the fresh uuid: every xdist worker must collect the same test names.
@pytest.mark.parametrize("good", [SID, SID.upper(), pytest.param(str(uuid.uuid4()), id="fresh-uuid4")])
def test_a_uuid_is_a_session_id(good: str) -> None:
    assert is_uuid(good)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not-a-uuid",
        "--dangerously-skip-permissions",
        SID + "\n",
        "\n" + SID,
        SID + " --dangerously-skip-permissions",
        SID.replace("-", ""),
        SID[:-1] + "g",
        None,
        42,
    ],
)
def test_anything_else_is_refused(bad: object) -> None:
    assert not is_uuid(bad)
    if isinstance(bad, str):
        with pytest.raises(ValueError):
            transcript_path("/cfg", "/work", bad)


@pytest.mark.parametrize(
    ("cwd", "folder"),
    [
        ("/srv/My_Proj.v2/sub dir", "-srv-My-Proj-v2-sub-dir"),
        ("/home/ada/work", "-home-ada-work"),
        ("/tmp/a-b~c+d@e", "-tmp-a-b-c-d-e"),
        ("/data/ünï", "-data--n-"),
        # The CLI counts JavaScript string units: a character beyond U+FFFF is two of them.
        ("/w/emoji 🎉 dir", "-w-emoji----dir"),
    ],
)
def test_project_folder_encoding_replaces_every_non_alphanumeric(cwd: str, folder: str) -> None:
    assert encode_project_dir(cwd) == folder
    assert encode_project_dir(Path(cwd)) == folder


def test_a_long_project_folder_is_cut_at_200_and_gets_the_clis_hash() -> None:
    # Name and hash as the real CLI made them for this path (see test_stub_api for the live check).
    cwd = "/tmp/tmp9gum2ri6/" + "x" * 250
    assert encode_project_dir(cwd) == "-tmp-tmp9gum2ri6-" + "x" * 183 + "-bh2w8c"
    exactly = "/" + "a" * 199
    assert encode_project_dir(exactly) == "-" + "a" * 199
    longer = encode_project_dir(exactly + "b")
    assert longer.startswith("-" + "a" * 199 + "-") and len(longer) > 201


def test_transcript_path() -> None:
    sid = str(uuid.uuid4())
    assert transcript_path("/cfg", "/srv/My_Proj.v2/sub dir", sid) == Path(
        f"/cfg/projects/-srv-My-Proj-v2-sub-dir/{sid}.jsonl"
    )
    assert transcript_path(Path("/cfg"), Path("/w"), sid.upper()).name == f"{sid}.jsonl"


def test_transcript_path_follows_symlinks_like_the_cli_does(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    assert transcript_path("/cfg", tmp_path / "link", SID) == transcript_path("/cfg", real, SID)
    assert transcript_path("/cfg", tmp_path / "link", SID).parent.name.endswith("-real")
