"""The agents' way out of their sandbox's network: a proxy that reaches the model API (with the
server's credentials, which no agent holds) and the hosts an admin allows, nothing else. No Django
imports (an import-linter contract checks it).
"""

from .hosts import AllowedHosts, Refused, Rule, parse_allowed_hosts
from .mcp import McpRoute
from .proxy import CREDENTIALS, SETTING, EgressProxy, Policy, placeholder

__all__ = [
    "CREDENTIALS",
    "SETTING",
    "AllowedHosts",
    "EgressProxy",
    "McpRoute",
    "Policy",
    "Refused",
    "Rule",
    "parse_allowed_hosts",
    "placeholder",
]
