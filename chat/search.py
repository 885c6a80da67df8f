"""Searching a person's chats through the database's full-text index.

A chat matches when every word of the query is in its title, or in one of its prompts or
assistant texts (words may sit in different messages); a word also matches longer words that
start with it. Matches come ranked (the words in the title first, then how well the chat's best
message matches, then the newest) with that message's matching passage, and a page of them
costs one query: the total comes along as a window count.

A word counts in its newest ``settings.CLAUDE_SEARCH_NEWEST`` matching messages of the person (and
in titles; on PostgreSQL that many prompts and as many answers): a word in nearly every message
(ranking all of them took seconds over 300,000 messages) costs as much as one in a thousand, and a
rarer word is searched in full.

The documents live in the database's own full-text index, kept in step by the database itself
(migration ``0010_search_index``): on SQLite an FTS5 table filled by triggers; on PostgreSQL GIN
indexes on ``to_tsvector`` of prompts and assistant texts, read with ``django.contrib.postgres``'s
search expressions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import Case, F, Q, QuerySet, Value, When
from django.db.models.expressions import RawSQL
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from .models import Event, Session, Turn

# Around a match: private-use characters no one types, swapped for <mark> once the text is escaped.
_OPEN, _CLOSE = "\ue000", "\ue001"
_MARKED = re.compile(f"{_OPEN}(.*?){_CLOSE}", re.DOTALL)
# What both indexes split text into: runs of letters and digits.
_TOKEN = re.compile(r"[^\W_]+")
SNIPPET_WORDS = 16
# PostgreSQL: words as written (no stemming, no stop words), as SQLite's tokenizer sees them.
PG_CONFIG = "simple"


@dataclass(frozen=True)
class Found:
    """One page of matching chats, each with ``search_snippet`` (safe HTML, may be empty), and how many match in all."""

    chats: list[Session]
    total: int


def words_of(query: str) -> list[str]:
    return query.split()


def highlight(marked: str | None) -> SafeString:
    """Escaped text with each marked match wrapped in <mark>."""
    html = _MARKED.sub(r"<mark>\1</mark>", escape(marked or ""))
    # Escaped above: only the <mark> tags are markup.
    return mark_safe(html.replace(_OPEN, "").replace(_CLOSE, ""))


def _backend() -> _Sqlite | _Postgres:
    return _Postgres() if connection.vendor == "postgresql" else _Sqlite()


def _matching(backend: _Sqlite | _Postgres, *, owner_id: int | None, words: list[str]) -> QuerySet[Session]:
    """The person's chats (``owner_id`` None: everyone's) in which every word is in the title or in an indexed message."""
    matching = Session.objects.filter(owner_id=owner_id) if owner_id is not None else Session.objects.all()
    for word in words:
        where = Q(title__icontains=word)
        if (in_documents := backend.sessions_matching(word, owner_id=owner_id)) is not None:
            where |= in_documents
        matching = matching.filter(where)
    return matching


def search_chats(
    *, user: AbstractBaseUser, query: str, base: QuerySet[Session], offset: int, limit: int, everyone: bool = False
) -> Found:
    """The chats of ``base`` (the person's list, with what a row shows) that match ``query``, best
    first. ``everyone``: all members' chats and tasks' sessions (staff's team search; the caller checks)."""
    words = words_of(query)
    owner_id = None if everyone else user.pk
    backend = _backend()
    title_hits: Any = Value(0.0)
    for word in words:
        title_hits += Case(When(title__icontains=word, then=Value(1.0)), default=Value(0.0))
    found = (
        _matching(backend, owner_id=owner_id, words=words)
        .annotate(title_hits=title_hits)
        .values("id", "title_hits", "last_activity_at")
        .order_by()
    )
    found_sql, found_params = found.query.sql_with_params()
    hits_sql, hits_params = backend.hits(words, owner_id=owner_id)
    rows_sql, rows_params = base.order_by().query.sql_with_params()
    snippet_sql, snippet_params = backend.snippet(words, ref="page.ref")
    # One statement: the best message of each chat, the page of matching chats ranked, then the
    # rows of the list for that page alone, with the matching passage of each.
    sql = f"""
        WITH hits AS MATERIALIZED ({hits_sql}),
        best AS ({backend.best_of_hits}),
        page AS (
            SELECT found.id, best.ref, found.title_hits, COALESCE(best.score, 0) AS score,
                   found.last_activity_at, COUNT(*) OVER () AS total
            FROM ({found_sql}) found LEFT JOIN best ON best.session_id = found.id
            ORDER BY found.title_hits DESC, score DESC, found.last_activity_at DESC
            LIMIT %s OFFSET %s
        )
        SELECT chat.*, page.total AS search_total, ({snippet_sql}) AS search_snippet
        FROM page JOIN ({rows_sql}) chat ON chat.id = page.id
        ORDER BY page.title_hits DESC, page.score DESC, page.last_activity_at DESC
    """
    params = (*hits_params, *found_params, limit, offset, *snippet_params, *rows_params)
    chats = list(Session.objects.raw(sql, params))
    for chat in chats:
        chat.search_snippet = highlight(chat.search_snippet)  # type: ignore[attr-defined]
    total = chats[0].search_total if chats else 0  # type: ignore[attr-defined]
    return Found(chats=chats, total=total)


def count_matching(*, user: AbstractBaseUser, query: str) -> int:
    """How many chats match, for a page past the last one (which brings no window count along)."""
    return _matching(_backend(), owner_id=user.pk, words=words_of(query)).count()


def search_page(
    *, user: AbstractBaseUser, query: str, base: QuerySet[Session], number: str | None, per_page: int
) -> Page[Session]:
    """A page of matches as the list shows it; like ``Paginator.get_page``, a page number that is
    not one gives the first page, one past the end the last."""
    try:
        wanted = max(1, int(number or 1))
    except ValueError:
        wanted = 1
    found = search_chats(user=user, query=query, base=base, offset=(wanted - 1) * per_page, limit=per_page)
    if not found.chats and wanted > 1:
        wanted = max(1, -(-count_matching(user=user, query=query) // per_page))
        found = search_chats(user=user, query=query, base=base, offset=(wanted - 1) * per_page, limit=per_page)
    # The count came with the page: a range of that length stands in for the matches themselves.
    return Page(found.chats, wanted, Paginator(range(found.total), per_page))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------
# The two indexes. A document's ``ref`` names it in both: a turn's prompt is 2 * its id, an
# assistant text 2 * its id + 1 (the FTS5 table's rowid on SQLite).


class _Sqlite:
    """FTS5 table ``chat_search(body, session_id UNINDEXED, owner_id UNINDEXED)``."""

    # SQLite returns the other columns of the row that holds the max(): the best message.
    best_of_hits = "SELECT session_id, ref, MAX(score) AS score FROM hits GROUP BY session_id"

    @staticmethod
    def term(word: str) -> str | None:
        """The FTS5 query of one word: its tokens as a phrase, the last one a prefix."""
        tokens = _TOKEN.findall(word)
        return '"' + " ".join(tokens) + '"*' if tokens else None

    def any_of(self, words: list[str]) -> str:
        terms = [t for t in map(self.term, words) if t]
        return " OR ".join(terms) or '""'

    @staticmethod
    def newest(term: str, *, owner_id: int | None) -> tuple[str, tuple[Any, ...]]:
        """The person's (None: everyone's) newest documents holding ``term``, with the bm25 score of
        each (FTS5 walks its index newest first and stops there; bm25 is lower for better matches)."""
        whose, params = ("AND owner_id = %s ", (owner_id,)) if owner_id is not None else ("", ())
        return (
            "SELECT * FROM (SELECT session_id, rowid AS ref, -bm25(chat_search) AS score FROM chat_search "
            f"WHERE chat_search MATCH %s {whose}ORDER BY rowid DESC LIMIT %s)",
            (term, *params, settings.CLAUDE_SEARCH_NEWEST),
        )

    def sessions_matching(self, word: str, *, owner_id: int | None) -> Q | None:
        term = self.term(word)
        if term is None:
            return None
        sql, params = self.newest(term, owner_id=owner_id)
        return Q(pk__in=RawSQL(f"SELECT session_id FROM ({sql})", params))

    def hits(self, words: list[str], *, owner_id: int | None) -> tuple[str, tuple[Any, ...]]:
        # Each word's newest documents; bm25 of several words is the sum of each word's.
        parts = [self.newest(term, owner_id=owner_id) for term in map(self.term, words) if term]
        if not parts:
            return "SELECT NULL AS session_id, NULL AS ref, NULL AS score WHERE 0", ()
        union = " UNION ALL ".join(sql for sql, _params in parts)
        return (
            f"SELECT MAX(session_id) AS session_id, ref, SUM(score) AS score FROM ({union}) GROUP BY ref",
            tuple(value for _sql, params in parts for value in params),
        )

    def snippet(self, words: list[str], *, ref: str) -> tuple[str, tuple[Any, ...]]:
        return (
            f"SELECT snippet(chat_search, 0, %s, %s, '…', {SNIPPET_WORDS}) FROM chat_search "
            f"WHERE chat_search MATCH %s AND rowid = {ref}",
            (_OPEN, _CLOSE, self.any_of(words)),
        )


class _Postgres:
    """GIN indexes on ``to_tsvector('simple', prompt)`` and on assistant texts' ``to_tsvector('simple', text)``."""

    best_of_hits = "SELECT DISTINCT ON (session_id) session_id, ref, score FROM hits ORDER BY session_id, score DESC"

    def __init__(self) -> None:
        from django.contrib.postgres import search as pg

        self.pg = pg
        # The very expressions the indexes were built from, so the planner matches them.
        self.prompt = pg.SearchVector("prompt", config=PG_CONFIG)
        self.text = pg.SearchVector("text", config=PG_CONFIG)

    @staticmethod
    def term(word: str) -> str | None:
        """A raw tsquery: the word as one quoted phrase (PostgreSQL's parser splits it as it split
        the documents), every lexeme a prefix."""
        if not _TOKEN.search(word):
            return None
        return "'" + word.replace("\\", "\\\\").replace("'", "''") + "':*"

    def query(self, words: list[str]) -> Any:
        terms = [t for t in map(self.term, words) if t]
        return self.pg.SearchQuery(" | ".join(terms) or "''", search_type="raw", config=PG_CONFIG)

    def _documents(self, query: Any, *, owner_id: int | None) -> tuple[QuerySet[Turn], QuerySet[Event]]:
        """The person's (None: everyone's) newest prompts and assistant texts matching ``query`` (at
        most CLAUDE_SEARCH_NEWEST of each)."""
        newest = settings.CLAUDE_SEARCH_NEWEST
        whose = Q(session__owner_id=owner_id) if owner_id is not None else Q()
        prompts = Turn.objects.filter(whose).annotate(document=self.prompt).filter(document=query)
        texts = (
            Event.objects.filter(
                Q(turn__session__owner_id=owner_id) if owner_id is not None else Q(), kind=Event.Kind.TEXT
            )
            .annotate(document=self.text)
            .filter(document=query)
        )
        return prompts.order_by("-id")[:newest], texts.order_by("-id")[:newest]

    def sessions_matching(self, word: str, *, owner_id: int | None) -> Q | None:
        term = self.term(word)
        if term is None:
            return None
        query = self.pg.SearchQuery(term, search_type="raw", config=PG_CONFIG)
        prompts, texts = self._documents(query, owner_id=owner_id)
        return Q(pk__in=prompts.values("session_id")) | Q(pk__in=texts.values("turn__session_id"))

    def hits(self, words: list[str], *, owner_id: int | None) -> tuple[str, tuple[Any, ...]]:
        query = self.query(words)
        # Each word's newest documents, ranked for all the words.
        prompt_ids: list[QuerySet[Any]] = []
        text_ids: list[QuerySet[Any]] = []
        for term in filter(None, map(self.term, words)):
            prompts, texts = self._documents(
                self.pg.SearchQuery(term, search_type="raw", config=PG_CONFIG), owner_id=owner_id
            )
            prompt_ids.append(prompts.values("id"))
            text_ids.append(texts.values("id"))
        if not prompt_ids:
            return "SELECT NULL AS session_id, NULL AS ref, NULL AS score WHERE false", ()
        rank = self.pg.SearchRank
        ranked_prompts = (
            Turn.objects.filter(id__in=prompt_ids[0].union(*prompt_ids[1:], all=True))
            .annotate(ref=F("id") * 2, score=rank(self.prompt, query))
            .values("session_id", "ref", "score")
            .order_by()
        )
        ranked_texts = (
            Event.objects.filter(id__in=text_ids[0].union(*text_ids[1:], all=True))
            .annotate(session_ref=F("turn__session_id"), ref=F("id") * 2 + 1, score=rank(self.text, query))
            .values("session_ref", "ref", "score")
            .order_by()
        )
        # Turns are ordered by default: the union is not, or its ORDER BY would name columns it lacks.
        sql, params = ranked_prompts.union(ranked_texts, all=True).order_by().query.sql_with_params()
        return f"SELECT * FROM ({sql}) docs (session_id, ref, score)", params

    def snippet(self, words: list[str], *, ref: str) -> tuple[str, tuple[Any, ...]]:
        query = self.query(words)

        def marked(field: str) -> Any:
            return self.pg.SearchHeadline(
                field,
                query,
                config=PG_CONFIG,
                start_sel=_OPEN,
                stop_sel=_CLOSE,
                max_fragments=1,
                max_words=SNIPPET_WORDS + 8,
                min_words=SNIPPET_WORDS // 2,
            )

        prompt = Turn.objects.filter(id=RawSQL(f"{ref} / 2", ())).annotate(marked=marked("prompt")).values("marked")
        text = Event.objects.filter(id=RawSQL(f"({ref} - 1) / 2", ())).annotate(marked=marked("text")).values("marked")
        prompt_sql, prompt_params = prompt.order_by().query.sql_with_params()
        text_sql, text_params = text.order_by().query.sql_with_params()
        return (
            f"SELECT CASE WHEN {ref} %% 2 = 0 THEN ({prompt_sql}) ELSE ({text_sql}) END",
            (*prompt_params, *text_params),
        )
