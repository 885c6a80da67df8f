"""The settings of the test processes: the product's own (project/settings.py) with two changes.

pyproject selects this module for pytest (and its xdist workers), and the live app's server and
commands select it in their environment (tests/conftest.py, ``live_app``). Production never does.

1. Every data folder is in a temporary folder of its own: the defaults are ``data/`` inside the
   checkout, where a test that makes a member's own folder without the ``claude_env`` fixture
   would leave a git repository behind, and where two workers would share one folder.
2. Passwords are hashed with MD5. Each test user costs PBKDF2's full work factor (about 0.6 s
   here) otherwise, and logging in costs it again; tests are not what that cost protects.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

# A pytest process (the one a person started, or an xdist worker, which inherits the first one's
# environment) always takes a fresh folder of its own, whatever the environment says: a developer's
# own CLAUDE_WORKDIR must not receive test data. A process a test starts with these settings (the
# live app) is not pytest: it keeps the folders that test gave it.
if "pytest" in sys.modules:
    _data = Path(tempfile.mkdtemp(prefix="claude-chat-test-data-"))
    atexit.register(shutil.rmtree, _data, ignore_errors=True)
    # In the environment, so that the secret key project/settings.py makes at import goes there,
    # and so that every process a test starts (manage.py, a server) that sets no data folder of
    # its own stays out of the checkout as well. The other folders default to folders under it.
    os.environ["APP_DATA_DIR"] = str(_data)
    for _name in ("CLAUDE_WORKDIR", "CLAUDE_CONFIG_DIR", "CLAUDE_ARCHIVE_DIR", "CLAUDE_TASK_STATE_DIR"):
        os.environ.pop(_name, None)

from project.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

_database = DATABASES["default"]  # noqa: F405
if "pytest" in sys.modules and _database["ENGINE"].endswith("sqlite3") and not os.environ.get("APP_TEST_DB"):
    # The test database goes there too: in /tmp, SQLite's -wal and -shm files outlived it.
    _database["TEST"]["NAME"] = str(_data / "test.sqlite3")
