"""The slash commands a chat offers in its message box's menu, and what each sends.

A message that starts with "/" is text unless the person chose a command from the menu: only that
deliberate choice is run as a command (a typed "/clear" would wipe the session's memory behind the
page's back). The built-in ones are a few of the CLI's own (``/compact``, ``/context``, ``/cost``,
sent to it as commands) and two the app does itself (``/model``, ``/clear``). A project's own
commands are the Markdown files of ``<workdir>/.claude/commands/``: read here through
:mod:`drivers.safefs` (a link, a FIFO or a folder of the agent's making is refused, never followed)
and sent as the prompt they hold, with ``$ARGUMENTS`` filled in. The CLI itself is started without
the project's settings (an agent-written ``.claude/settings.json`` could loosen its permissions),
so it would not know them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from enum import StrEnum

from drivers import safefs

from ..models import Session

log = logging.getLogger(__name__)

# A command's name: also a file name in .claude/commands, so no dots, slashes or leading dash.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
PROJECT_FOLDER = ".claude/commands"
MAX_PROJECT_COMMANDS = 100
MAX_COMMAND_BYTES = 64 * 1024
HINT_CHARS = 120


class Runs(StrEnum):
    CLI = "cli"  # sent to the CLI as the command
    APP = "app"  # done by the app (the CLI's own would act behind the page's back)
    PROJECT = "project"  # a project's file, sent as the prompt it holds


@dataclass(frozen=True)
class Command:
    name: str
    hint: str
    runs: Runs
    takes_arguments: bool = False
    # The CLI answers it itself, in lines aligned with spaces rather than Markdown: shown as they are.
    plain_output: bool = False


BUILT_IN = (
    Command("compact", "Compact the conversation; optionally say what to keep", Runs.CLI, takes_arguments=True),
    Command("context", "What fills the context window", Runs.CLI),
    Command("cost", "What this chat has cost so far", Runs.CLI, plain_output=True),
    Command("model", "The model this chat uses; /model NAME switches", Runs.APP, takes_arguments=True),
    Command("clear", "A new chat that starts from a summary of this one", Runs.APP),
)


class CommandFailed(Exception):
    """A chosen command cannot run; the text says why and what to do."""


def built_in(name: str) -> Command | None:
    return next((command for command in BUILT_IN if command.name == name), None)


def _project_file(session: Session, name: str) -> bytes:
    return safefs.read_bytes(session.workdir, f"{PROJECT_FOLDER}/{name}.md", limit=MAX_COMMAND_BYTES)


def _split_front_matter(text: str) -> tuple[dict[str, str], str]:
    """A command file's ``---`` header (its ``description``) and its body."""
    if not text.startswith("---\n"):
        return {}, text
    head, sep, body = text[4:].partition("\n---")
    if not sep:
        return {}, text
    fields = {}
    for line in head.splitlines():
        key, colon, value = line.partition(":")
        if colon:
            fields[key.strip().lower()] = value.strip().strip("\"'")
    return fields, body.lstrip("-").lstrip("\n")


def project_commands(session: Session) -> list[Command]:
    """The project's own commands (``.claude/commands/*.md`` of the chat's working directory)."""
    try:
        listed = safefs.entries(session.workdir, PROJECT_FOLDER)
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.warning("chat %s: the project's commands were not read: %s", session.pk, exc)
        return []
    found = []
    for entry in listed[: MAX_PROJECT_COMMANDS * 2]:
        name = entry.name.removesuffix(".md")
        if not entry.is_file or not entry.name.endswith(".md") or not NAME.fullmatch(name):
            continue
        try:
            fields, _body = _split_front_matter(_project_file(session, name).decode("utf-8", "replace"))
        except OSError:
            continue  # a link or a FIFO made in its place: not offered
        hint = fields.get("description") or "A command of this project"
        found.append(Command(name, hint[:HINT_CHARS], Runs.PROJECT, takes_arguments=True))
        if len(found) >= MAX_PROJECT_COMMANDS:
            break
    return found


def offered(session: Session) -> list[Command]:
    """The menu: the built-in commands, then the project's (a name of both is the built-in)."""
    built_in = {command.name for command in BUILT_IN}
    return [*BUILT_IN, *(c for c in project_commands(session) if c.name not in built_in)]


def parse(text: str) -> tuple[str, str] | None:
    """``/name arguments`` as its name and arguments; None if it is not shaped as a command."""
    if not text.startswith("/"):
        return None
    name, _sep, arguments = text[1:].partition(" ")
    name, _nl, rest = name.partition("\n")
    if not NAME.fullmatch(name):
        return None
    return name, (rest + " " + arguments if rest else arguments).strip()


def chosen(text: str, session: Session) -> tuple[Command, str] | None:
    """The offered command ``text`` runs, with its arguments; None: it is text (an unknown name)."""
    parsed = parse(text)
    if parsed is None:
        return None
    name, arguments = parsed
    command = next((c for c in offered(session) if c.name == name), None)
    if command is None or (arguments and not command.takes_arguments):
        return None
    return command, arguments


def project_prompt(session: Session, name: str, arguments: str) -> str:
    """What a project command sends: its file's body, ``$ARGUMENTS`` filled in (or the arguments
    after it, as the CLI does for a file that does not name them)."""
    if not NAME.fullmatch(name):
        raise CommandFailed(f"“/{name}” is not a command name.")
    try:
        data = _project_file(session, name)
    except FileNotFoundError:
        raise CommandFailed(
            f"The command /{name} is no longer in {PROJECT_FOLDER}/ of this chat's folder, so nothing was sent."
        ) from None
    except OSError as exc:
        raise CommandFailed(f"The command /{name} could not be read, so nothing was sent: {exc}") from None
    _fields, body = _split_front_matter(data.decode("utf-8", "replace"))
    if "$ARGUMENTS" in body:
        return body.replace("$ARGUMENTS", arguments).strip()
    return f"{body.strip()}\n\nARGUMENTS: {arguments}" if arguments else body.strip()
