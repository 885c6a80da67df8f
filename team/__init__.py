"""The team's view: usage and its charts, team-wide search. It reads chats and tasks; the people's
own records (roles, budgets, the audit log) live in :mod:`members`, below the chats that check them."""
