"""Files beneath a trusted folder, never through a link (drivers/safefs.py), on the real file system.

Each test builds a folder an agent could have written (``agent``) next to the server's own files
(``server``: a secret key and a database), puts links, FIFOs, devices and folders where files are
expected, and checks that nothing of the server's is read, written or removed, and that the
refusal says which path and what it is.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from pathlib import Path

import pytest

from drivers import safefs

SECRET = b"SERVER-SECRET-KEY-5d1e"
DATABASE = b"SQLite format 3\x00 the server's data"


@pytest.fixture(autouse=True, params=["openat2", "walk"])
def resolution(request, monkeypatch):
    """Every test runs twice: folders opened in one call by openat2 where the system has it, and
    one component at a time (what other systems get, and what says which step was refused)."""
    if request.param == "walk":
        monkeypatch.setattr(safefs.walk, "_openat2", None)
    elif safefs.walk._openat2 is None:
        pytest.skip("this system has no openat2")
    return request.param


@pytest.fixture
def server(tmp_path: Path) -> Path:
    """The server's own files, which no link may lead to."""
    folder = tmp_path / "server"
    (folder / "projects" / "enc").mkdir(parents=True)
    (folder / "secret-key.txt").write_bytes(SECRET)
    (folder / "db.sqlite3").write_bytes(DATABASE)
    # The same layout as the agent's, so a link to this folder at any step finds a file to read.
    (folder / "projects" / "enc" / "chat.jsonl").write_bytes(SECRET)
    return folder


@pytest.fixture
def agent(tmp_path: Path) -> Path:
    """A chat's config folder (the trusted root) with its transcript: ``projects/enc/chat.jsonl``."""
    root = tmp_path / "config"
    (root / "projects" / "enc").mkdir(parents=True)
    (root / "projects" / "enc" / "chat.jsonl").write_bytes(b'{"type": "user"}\n')
    return root


TRANSCRIPT = "projects/enc/chat.jsonl"


def untouched(server: Path) -> None:
    assert (server / "secret-key.txt").read_bytes() == SECRET
    assert (server / "db.sqlite3").read_bytes() == DATABASE
    assert (server / "projects" / "enc" / "chat.jsonl").read_bytes() == SECRET


def link_at(agent: Path, server: Path, step: int) -> str:
    """Replace component ``step`` of TRANSCRIPT with a link to the same place in the server's folder."""
    parts = TRANSCRIPT.split("/")
    where = agent.joinpath(*parts[: step + 1])
    if where.is_dir():
        os.rename(where, where.with_name(where.name + ".moved"))
    else:
        where.unlink()
    target = server / "secret-key.txt" if step == len(parts) - 1 else server.joinpath(*parts[: step + 1])
    where.symlink_to(target)
    return str(where)


# ---------------------------------------------------------------------------------------
# Reading


def test_a_regular_file_is_read_beneath_its_root(agent):
    assert safefs.read_bytes(agent, TRANSCRIPT) == b'{"type": "user"}\n'
    assert safefs.read_bytes(str(agent), "projects//enc/./chat.jsonl") == b'{"type": "user"}\n'
    with safefs.open_read(agent, TRANSCRIPT) as file:
        assert file.read() == b'{"type": "user"}\n'
    assert safefs.read_bytes(agent, TRANSCRIPT, limit=5) == b'{"typ'
    big = os.urandom(3 * 1024 * 1024 + 7)
    (agent / "big.bin").write_bytes(big)
    assert safefs.read_bytes(agent, "big.bin") == big
    assert safefs.read_bytes(agent, "big.bin", limit=2 * 1024 * 1024 + 1) == big[: 2 * 1024 * 1024 + 1]


@pytest.mark.parametrize("step", [0, 1, 2], ids=["projects", "encoded-cwd", "transcript"])
def test_a_link_at_any_step_is_refused_and_names_where(agent, server, step):
    where = link_at(agent, server, step)
    for read in (
        lambda: safefs.read_bytes(agent, TRANSCRIPT),
        lambda: safefs.open_read(agent, TRANSCRIPT),
        lambda: safefs.open_fd(agent, TRANSCRIPT),
    ):
        with pytest.raises(safefs.LinkRefused) as refused:
            read()
        assert refused.value.path == where and str(refused.value) == f"{where} is a symbolic link, which the " + (
            "server never follows in a folder an agent can write"
        )
        assert refused.value.errno == errno.ELOOP and isinstance(refused.value, OSError)
    untouched(server)


def test_a_link_to_a_folder_at_the_root_of_the_name_is_refused_for_folders_too(agent, server):
    where = link_at(agent, server, 0)
    with pytest.raises(safefs.LinkRefused, match="projects is a symbolic link"), safefs.folder(agent, "projects"):
        pass
    with pytest.raises(safefs.LinkRefused):
        safefs.entries(agent, "projects/enc")
    with pytest.raises(safefs.LinkRefused):
        safefs.lstat(agent, TRANSCRIPT)
    assert Path(where).is_symlink()


def test_a_fifo_is_refused_without_waiting_for_a_writer(agent):
    os.mkfifo(agent / "pipe")
    with pytest.raises(safefs.NotAFile) as refused:
        safefs.read_bytes(agent, "pipe")
    assert str(refused.value) == f"{agent}/pipe is a FIFO (named pipe), not a regular file"
    assert refused.value.kind == "a FIFO (named pipe)"


def test_a_device_is_refused(agent):
    try:
        os.mknod(agent / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device needs root")
    with pytest.raises(safefs.NotAFile, match="null is a character device, not a regular file"):
        safefs.read_bytes(agent, "null")


def test_a_socket_is_refused(agent):
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(agent / "sock"))
        with pytest.raises(safefs.NotAFile, match="sock is a socket, not a regular file"):
            safefs.read_bytes(agent, "sock")


def test_a_folder_where_a_file_is_expected_and_a_file_where_a_folder_is(agent):
    with pytest.raises(safefs.NotAFile, match="enc is a folder, not a regular file"):
        safefs.read_bytes(agent, "projects/enc")
    with pytest.raises(safefs.NotAFolder) as refused:
        safefs.read_bytes(agent, f"{TRANSCRIPT}/deeper")
    assert refused.value.path == f"{agent}/{TRANSCRIPT}" and refused.value.kind == "a regular file"
    with pytest.raises(safefs.NotAFolder), safefs.folder(agent, TRANSCRIPT):
        pass


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../server/secret-key.txt", "climbs with '..'"),
        ("projects/../../server/secret-key.txt", "climbs with '..'"),
        ("/etc/passwd", "it is absolute"),
        ("//etc/passwd", "it is absolute"),
        ("a\0b", "NUL"),
    ],
)
def test_names_that_leave_the_root_are_refused(agent, server, name, why):
    with pytest.raises(safefs.NameRefused, match=why):
        safefs.read_bytes(agent, name)
    with pytest.raises(safefs.NameRefused):
        safefs.create(agent, name)
    with pytest.raises(safefs.NameRefused):
        safefs.remove_tree(agent, name)
    untouched(server)


def test_a_name_must_name_something_in_the_folder(agent):
    for name in ("", ".", "./"):
        with pytest.raises(safefs.NameRefused, match="names the folder itself"):
            safefs.read_bytes(agent, name)
        with pytest.raises(safefs.NameRefused):
            safefs.remove_file(agent, name)


def test_name_beneath_compares_paths_as_text(agent):
    assert safefs.name_beneath(agent, agent / TRANSCRIPT) == TRANSCRIPT
    assert safefs.name_beneath(f"{agent}//", f"{agent}/./projects//enc/chat.jsonl") == TRANSCRIPT
    assert safefs.name_beneath(agent, agent) == ""
    assert safefs.name_beneath("data/claude", "data/claude/1/x") == "1/x"
    with pytest.raises(safefs.NameRefused, match="not inside"):
        safefs.name_beneath("data/claude", "/data/claude/1/x")
    with pytest.raises(safefs.NameRefused, match="not inside"):
        safefs.name_beneath(agent, "/etc/passwd")
    with pytest.raises(safefs.NameRefused, match="not inside"):
        safefs.name_beneath(agent / "projects", agent / "projects-other" / "x")
    with pytest.raises(safefs.NameRefused, match=r"climbs with '\.\.'"):
        safefs.name_beneath(agent, f"{agent}/projects/../../server/secret-key.txt")


def test_a_root_given_as_an_open_folder_is_used_and_left_open(agent, server):
    fd = os.open(agent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert safefs.read_bytes(fd, TRANSCRIPT) == b'{"type": "user"}\n'
        link_at(agent, server, 1)
        with pytest.raises(safefs.LinkRefused) as refused:
            safefs.read_bytes(fd, TRANSCRIPT)
        assert refused.value.path == f"{agent}/projects/enc"  # named from the descriptor
        os.fstat(fd)  # still open
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------
# lstat and listing


def test_lstat_sees_a_link_as_a_link_and_never_what_it_points_to(agent, server):
    link_at(agent, server, 2)
    found = safefs.lstat(agent, TRANSCRIPT)
    assert stat.S_ISLNK(found.st_mode)
    assert stat.S_ISDIR(safefs.lstat(agent, "").st_mode)
    with pytest.raises(FileNotFoundError):
        safefs.lstat(agent, "projects/enc/missing.jsonl")
    with pytest.raises(FileNotFoundError):
        safefs.lstat(agent, "missing/chat.jsonl")


def test_entries_list_every_name_as_it_is(agent, server):
    (agent / "notes.txt").write_text("hello")
    (agent / "secret").symlink_to(server / "secret-key.txt")
    os.mkfifo(agent / "pipe")
    listed = {entry.name: entry for entry in safefs.entries(agent)}
    assert sorted(listed) == ["notes.txt", "pipe", "projects", "secret"]
    assert listed["notes.txt"].is_file and listed["notes.txt"].size == 5
    assert listed["projects"].is_folder
    assert listed["secret"].kind == "a symbolic link" and not listed["secret"].is_file
    assert listed["pipe"].kind == "a FIFO (named pipe)"


# ---------------------------------------------------------------------------------------
# Creating and replacing


def test_create_makes_a_new_file_and_its_folders(agent):
    with safefs.create(agent, "projects/new/deeper/chat.jsonl", parents=True, mode=0o640) as out:
        out.write(b"restored\n")
        out.seek(0)
        assert out.read() == b"restored\n"  # read back through the same descriptor
    made = agent / "projects" / "new" / "deeper" / "chat.jsonl"
    assert made.read_bytes() == b"restored\n"
    assert stat.S_IMODE(made.stat().st_mode) == 0o640 & ~_umask()
    assert stat.S_IMODE((agent / "projects" / "new").stat().st_mode) == 0o700 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_create_never_overwrites_nor_writes_through_a_link(agent, server):
    with pytest.raises(FileExistsError):
        safefs.create(agent, TRANSCRIPT)
    assert (agent / TRANSCRIPT).read_bytes() == b'{"type": "user"}\n'
    link_at(agent, server, 2)
    with pytest.raises(safefs.LinkRefused):
        safefs.create(agent, TRANSCRIPT)
    untouched(server)


@pytest.mark.parametrize("step", [0, 1])
def test_create_with_parents_does_not_make_folders_through_a_link(agent, server, step):
    link_at(agent, server, step)
    with pytest.raises(safefs.LinkRefused):
        safefs.create(agent, "projects/enc/new/chat.jsonl", parents=True)
    with pytest.raises(safefs.LinkRefused):
        safefs.make_folders(agent, "projects/enc/new")
    assert not (server / "projects" / "enc" / "new").exists() and not (server / "enc").exists()
    untouched(server)


def test_replacing_renames_a_new_file_over_the_old_one(agent):
    with safefs.replacing(agent, TRANSCRIPT) as out:
        out.write(b"second version\n")
        assert (agent / TRANSCRIPT).read_bytes() == b'{"type": "user"}\n', "the old one stays until the end"
    assert (agent / TRANSCRIPT).read_bytes() == b"second version\n"
    assert sorted(os.listdir(agent / "projects" / "enc")) == ["chat.jsonl"]


def test_replacing_a_link_replaces_the_link_not_what_it_points_to(agent, server):
    link_at(agent, server, 2)
    with safefs.replacing(agent, TRANSCRIPT, sync=False) as out:
        out.write(b"mine\n")
    assert not (agent / TRANSCRIPT).is_symlink() and (agent / TRANSCRIPT).read_bytes() == b"mine\n"
    untouched(server)


def test_a_failed_replacement_leaves_the_old_file_and_no_temporary(agent):
    with pytest.raises(RuntimeError), safefs.replacing(agent, TRANSCRIPT) as out:
        out.write(b"half")
        raise RuntimeError("disk full")
    assert (agent / TRANSCRIPT).read_bytes() == b'{"type": "user"}\n'
    assert os.listdir(agent / "projects" / "enc") == ["chat.jsonl"]
    with pytest.raises(safefs.NotAFile, match="enc is a folder"), safefs.replacing(agent, "projects/enc"):
        pass
    assert os.listdir(agent / "projects") == ["enc"]


def test_replacing_refuses_a_link_on_the_way(agent, server):
    link_at(agent, server, 1)
    with pytest.raises(safefs.LinkRefused), safefs.replacing(agent, TRANSCRIPT):
        pass
    untouched(server)


# ---------------------------------------------------------------------------------------
# Removing


def test_remove_file_removes_a_link_itself_and_refuses_a_folder(agent, server):
    link_at(agent, server, 2)
    assert safefs.remove_file(agent, TRANSCRIPT) is True
    assert not os.path.lexists(agent / TRANSCRIPT)
    assert safefs.remove_file(agent, TRANSCRIPT) is False
    with pytest.raises(FileNotFoundError):
        safefs.remove_file(agent, TRANSCRIPT, missing_ok=False)
    assert safefs.remove_file(agent, "missing/chat.jsonl") is False
    with pytest.raises(safefs.NotAFile, match="enc is a folder"):
        safefs.remove_file(agent, "projects/enc")
    untouched(server)


@pytest.mark.parametrize("step", [0, 1])
def test_remove_refuses_a_link_on_the_way(agent, server, step):
    link_at(agent, server, step)
    with pytest.raises(safefs.LinkRefused):
        safefs.remove_file(agent, TRANSCRIPT)
    with pytest.raises(safefs.LinkRefused):
        safefs.remove_tree(agent, "projects/enc/chat.jsonl")
    untouched(server)


def test_remove_tree_removes_a_folder_and_nothing_its_links_point_to(agent, server):
    inside = agent / "projects" / "enc"
    (inside / "to-secret").symlink_to(server / "secret-key.txt")
    (inside / "to-server").symlink_to(server)
    os.mkfifo(inside / "pipe")
    (inside / "sub" / "deeper").mkdir(parents=True)
    (inside / "sub" / "deeper" / "file").write_text("x")
    assert safefs.remove_tree(agent.parent, agent.name) is True
    assert not agent.exists()
    assert safefs.remove_tree(agent.parent, agent.name) is False
    untouched(server)


def test_remove_tree_of_a_link_removes_only_the_link(agent, server):
    (agent / "sessions").symlink_to(server)
    assert safefs.remove_tree(agent, "sessions") is True
    assert not os.path.lexists(agent / "sessions")
    untouched(server)


def test_stat_file_tells_a_regular_file_from_anything_else(agent, server):
    assert safefs.stat_file(agent, TRANSCRIPT).st_size == len(b'{"type": "user"}\n')
    os.mkfifo(agent / "pipe")
    with pytest.raises(safefs.NotAFile, match="pipe is a FIFO"):
        safefs.stat_file(agent, "pipe")
    with pytest.raises(FileNotFoundError):
        safefs.stat_file(agent, "missing")
    link_at(agent, server, 2)
    with pytest.raises(safefs.LinkRefused, match=r"chat\.jsonl is a symbolic link"):
        safefs.stat_file(agent, TRANSCRIPT)


def test_every_refusal_is_logged_with_its_path(agent, server, caplog):
    where = link_at(agent, server, 1)
    with caplog.at_level("WARNING", logger="drivers.safefs"), pytest.raises(safefs.LinkRefused):
        safefs.read_bytes(agent, TRANSCRIPT)
    assert [record.getMessage() for record in caplog.records] == [
        f"refused {where}: is a symbolic link, which the server never follows in a folder an agent can write"
    ]


def test_openat2_opens_nested_folders_in_one_call_where_there_is_one(agent, server, resolution, monkeypatch):
    if resolution != "openat2":
        pytest.skip("for the openat2 run")
    calls = []
    real = safefs.walk._openat2

    def counted(dir_fd, path):
        calls.append(path)
        return real(dir_fd, path)

    monkeypatch.setattr(safefs.walk, "_openat2", counted)
    assert safefs.read_bytes(agent, TRANSCRIPT) == b'{"type": "user"}\n'
    assert calls == ["projects/enc"]
    link_at(agent, server, 1)
    with pytest.raises(safefs.LinkRefused) as refused:
        safefs.read_bytes(agent, TRANSCRIPT)
    assert refused.value.path == f"{agent}/projects/enc" and calls == ["projects/enc", "projects/enc"]
