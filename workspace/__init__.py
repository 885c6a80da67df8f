"""A member's workspace beside a chat or a task: its files, its git changes and a terminal, all
reached as the agent of that chat or task reaches them (see README, "Workspace")."""
