"""A full disk is told apart from other failures (chat/services/disk.py), on real full file
systems and databases: a small tmpfs, SQLite's page limit, a PostgreSQL tablespace on a tmpfs."""

from __future__ import annotations

import errno
import pwd
import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest
from django.db import OperationalError, connection

from chat.services import disk
from tests.disks import fill, small_disk


def test_a_write_to_a_full_file_system_is_a_full_disk(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as folder:
        fill(folder)
        with pytest.raises(OSError) as failed:
            (folder / "upload.txt").write_bytes(b"x" * 10_000)
        assert failed.value.errno == errno.ENOSPC
        assert disk.is_disk_full(failed.value)
        wrapped = RuntimeError("saving failed")
        wrapped.__cause__ = failed.value
        assert disk.is_disk_full(wrapped)


def test_sqlite_at_its_page_limit_says_full_also_through_django(db) -> None:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA page_count")
        (pages,) = cursor.fetchone()
        # Earlier tests of this database may have left free pages: the row must need more than those.
        cursor.execute("PRAGMA freelist_count")
        (free,) = cursor.fetchone()
        cursor.execute("PRAGMA page_size")
        (page_size,) = cursor.fetchone()
        cursor.execute(f"PRAGMA max_page_count = {pages}")
        try:
            with pytest.raises(OperationalError) as failed:
                cursor.execute("CREATE TABLE filler (x TEXT)")
                cursor.execute("INSERT INTO filler VALUES (?)", ["x" * (page_size * (free + 8))])
        finally:
            cursor.execute("PRAGMA max_page_count = 4294967294")
    assert "database or disk is full" in str(failed.value)
    assert disk.is_disk_full(failed.value)
    assert disk.explain(failed.value, what="your message") == (
        "The server's disk is full, so your message was not saved. Tell an admin: the server needs free disk "
        "space. Then try again."
    )


def test_sqlite_in_wal_mode_on_a_full_disk_says_only_disk_io_error_and_counts_as_full(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as folder:
        database = sqlite3.connect(folder / "db.sqlite3")
        database.execute("PRAGMA journal_mode=WAL")
        database.execute("CREATE TABLE t (x TEXT)")
        database.commit()
        database.close()  # its shared-memory file goes with the last connection
        fill(folder)
        database = sqlite3.connect(folder / "db.sqlite3")
        try:
            with pytest.raises(sqlite3.Error) as failed:
                database.execute("INSERT INTO t VALUES ('hello')")
                database.commit()
        finally:
            database.close()
        assert failed.value.sqlite_errorname.startswith("SQLITE_IOERR"), failed.value.sqlite_errorname
        assert str(failed.value) == "disk I/O error"
        assert disk.is_disk_full(failed.value, database_folder=folder)
    # The same words where there is room are some other fault.
    assert not disk.is_disk_full(failed.value, database_folder=tmp_path)


def test_other_failures_are_not_a_full_disk(tmp_path: Path) -> None:
    assert not disk.is_disk_full(OperationalError("no such table: chat_turn"))
    assert not disk.is_disk_full(PermissionError(errno.EACCES, "Permission denied"))
    assert not disk.is_disk_full(ValueError("bad"))
    assert disk.explain(ValueError("bad"), what="your message") is None


def test_postgresql_out_of_space_is_a_full_disk(postgres_url: str) -> None:
    import psycopg

    account = pwd.getpwnam("postgres")
    # Not under tmp_path: the server's account must reach it, and pytest's folders are the test's own.
    place = Path(tempfile.mkdtemp(prefix="chat-pg-disk-"))
    place.chmod(0o755)
    with small_disk(place / "disk", size="1m", owner=(account.pw_uid, account.pw_gid)) as folder:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"CREATE TABLESPACE small LOCATION '{folder}'")
            try:
                conn.execute("CREATE TABLE filler (x TEXT) TABLESPACE small")
                with pytest.raises(psycopg.Error) as failed:
                    for _ in range(1000):
                        # Incompressible rows, stored as they are.
                        conn.execute(
                            "INSERT INTO filler SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 200)"
                        )
            finally:
                conn.execute("DROP TABLE IF EXISTS filler")
                conn.execute("DROP TABLESPACE small")
    shutil.rmtree(place)
    assert failed.value.sqlstate == disk.POSTGRES_DISK_FULL
    assert disk.is_disk_full(failed.value)
