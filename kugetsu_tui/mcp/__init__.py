"""`kugetsu mcp`: planner agents delegate through MCP (server.py: the SDK side; tools.py: the work)."""

from kugetsu_tui.mcp.server import build_server, serve
from kugetsu_tui.mcp.tools import Tools

__all__ = ["Tools", "build_server", "serve"]
