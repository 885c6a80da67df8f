"""The OpenAPI 3 description of the HTTP API, served at /api/openapi.json.

Written by hand next to chat/api.py; tests/test_api.py checks it names every route and status.
"""

from __future__ import annotations

from typing import Any


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _all_required(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}


def openapi_document(*, limit: int, projects: list[str]) -> dict[str, Any]:
    unauthorized = _error("No token, or a token that is not valid. Carries `WWW-Authenticate: Bearer`.")
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Claude Code chat API",
            "version": "1",
            "description": (
                "Runs Claude Code turns for IDE plugins and scripts. Authenticate with the token from your "
                "settings page (`Authorization: Bearer <token>`). Every error is `{\"error\": \"...\"}`."
            ),
        },
        "security": [{"bearerAuth": []}],
        "paths": {
            "/api/analysis/chat": {
                "post": {
                    "summary": "Send one message to a chat and wait for the answer",
                    "description": (
                        "The first call with a sessionId creates the chat (owned by the token's user, listed in "
                        "their chats, titled by the message); later calls continue it with its memory. Turns of one "
                        "chat run one at a time: a call waits behind earlier ones, but if its turn has not started "
                        "within CLAUDE_API_BUSY_WAIT seconds it is withdrawn (kept in the chat as not run) and the "
                        "call answers 409 (chat busy) or 503 (all Claude Code processes busy). A running turn is "
                        "not stopped if the caller hangs up; its answer stays in the chat."
                    ),
                    "operationId": "chat",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatRequest"}}}},
                    "responses": {
                        "200": {"description": "The turn finished.",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatResponse"}}}},
                        "400": _error("Body not a JSON object, sessionId not a UUID, message missing, or unknown projectKey "
                                      "(the error lists the known keys)."),
                        "401": unauthorized,
                        "404": _error("The sessionId belongs to another user's chat."),
                        "405": _error("Not POST."),
                        "409": _error("The chat is busy beyond the wait, archived, was started in another project, "
                                      "or its turn was stopped from the chat page."),
                        "413": _error(f"message is longer than {limit:,} characters."),
                        "502": _error("Claude Code failed; the error is the turn's error text."),
                        "503": _error("All Claude Code processes stayed busy beyond the wait, or the server shut down "
                                      "during the turn."),
                        "504": _error("No answer within the turn timeout (CLAUDE_TURN_TIMEOUT)."),
                    },
                }
            },
            "/api/claude-code/pool/status": {
                "get": {
                    "summary": "How busy the Claude Code processes of this server are",
                    "operationId": "poolStatus",
                    "responses": {
                        "200": {"description": "The pool's figures now.",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PoolStatus"}}}},
                        "401": unauthorized,
                        "405": _error("Not GET."),
                    },
                }
            },
            "/api/openapi.json": {
                "get": {
                    "summary": "This description",
                    "operationId": "openapi",
                    "security": [],
                    "responses": {"200": {"description": "OpenAPI 3 document.", "content": {"application/json": {}}}},
                }
            },
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "ChatRequest": {
                    "type": "object",
                    "required": ["sessionId", "message"],
                    "properties": {
                        "sessionId": {"type": "string", "format": "uuid",
                                      "description": "Chosen by the client; any case, answered in lower case."},
                        "message": {"type": "string", "minLength": 1, "maxLength": limit},
                        "projectKey": {"type": "string", "enum": projects, "default": "default",
                                       "description": "Working directory of a new chat. A chat keeps the one it was "
                                                      "created in: another key answers 409, leaving it out continues."},
                    },
                },
                "ChatResponse": _all_required({
                    "sessionId": {"type": "string", "format": "uuid"},
                    "answer": {"type": "string", "description": "The assistant's text blocks of this turn, joined by blank lines."},
                    "workerId": {"type": "string", "description": "host:pid of the Claude Code process that ran the turn."},
                    "timestamp": {"type": "string", "format": "date-time", "description": "When the turn finished (ISO 8601)."},
                }),
                "PoolStatus": _all_required({
                    "active": {"type": "integer", "description": "Claude Code processes running now."},
                    "limit": {"type": "integer", "description": "At most this many at once (CLAUDE_MAX_CONCURRENT)."},
                    "waiting": {"type": "integer", "description": "Turns waiting for a free process now."},
                    "totalRequests": {"type": "integer", "description": "Turns that asked for a process since the server started."},
                }),
                "Error": _all_required({"error": {"type": "string"}}),
            },
        },
    }
