"""Where a chat's transcript is taken to be (chat/services/packing.py): only inside its config folder."""

from __future__ import annotations

import os

import pytest

from chat.services.packing import ArchiveError, Transcript, has_transcript


@pytest.fixture
def config(tmp_path):
    folder = tmp_path / "claude" / "1" / "chat"
    (folder / "projects" / "enc").mkdir(parents=True)
    return folder


def test_a_transcript_is_a_name_inside_its_config_folder(config):
    transcript = Transcript.at(config_dir=str(config), path=f"{config}/projects/enc/chat.jsonl")
    assert (transcript.root, transcript.name) == (str(config), "projects/enc/chat.jsonl")
    assert transcript.path == config / "projects" / "enc" / "chat.jsonl"


@pytest.mark.parametrize(
    "path",
    ["/etc/passwd", "{config}/../other/projects/enc/chat.jsonl", "{config}", "{config}-other/chat.jsonl"],
)
def test_a_damaged_record_pointing_elsewhere_is_refused(config, path):
    with pytest.raises(ArchiveError, match="is not inside its CLI config folder"):
        Transcript.at(config_dir=str(config), path=path.format(config=config))
    with pytest.raises(ArchiveError, match="no CLI config folder on record"):
        Transcript.at(config_dir="", path=f"{config}/projects/enc/chat.jsonl")


def test_only_a_regular_file_reached_without_links_counts_as_a_transcript(config, tmp_path):
    path = config / "projects" / "enc" / "chat.jsonl"
    assert not has_transcript(config_dir=str(config), path=str(path))
    path.write_text("{}\n")
    assert has_transcript(config_dir=str(config), path=str(path))
    path.unlink()
    (tmp_path / "secret-key.txt").write_text("SECRET")
    path.symlink_to(tmp_path / "secret-key.txt")
    assert not has_transcript(config_dir=str(config), path=str(path))
    path.unlink()
    os.mkfifo(path)
    assert not has_transcript(config_dir=str(config), path=str(path))
    assert not has_transcript(config_dir=str(config), path="/etc/passwd")
