"""The workspace keeps no tables of its own: its files are the folders', its history git's, and who
may work where is :class:`chat.models.ProjectAccess` (``may_work``)."""
