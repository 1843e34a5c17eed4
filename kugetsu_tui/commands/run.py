"""`run` (the dashboard, or headless for CI), `tui` and `demo`: where the entry point
dispatches to the other faces."""

from __future__ import annotations

import argparse
from pathlib import Path

from kugetsu_tui.commands.context import Context


def cmd_tui(ctx: Context, args: argparse.Namespace) -> int:
    from kugetsu_tui.tui.app import run_dashboard

    ctx.store.close()
    return run_dashboard(ctx.home, ctx.config, config_broken=ctx.config_broken)


def cmd_mcp(ctx: Context, args: argparse.Namespace) -> int:
    from kugetsu_tui.mcp import serve  # the MCP SDK loads only for this command

    ctx.store.close()
    return serve(ctx.home, ctx.config_path)


def cmd_web(ctx: Context, args: argparse.Namespace) -> int:
    from kugetsu_tui.web import run_web, web_options

    options = web_options(ctx.config, args.host, args.port, args.token_file)
    ctx.store.close()
    return run_web(ctx.home, ctx.config, ctx.config_path, options)


def cmd_run(ctx: Context, args: argparse.Namespace) -> int:
    if not args.headless:
        return cmd_tui(ctx, args)
    from kugetsu_tui.headless import run_headless

    ctx.store.close()
    return run_headless(
        ctx.home, ctx.config, forever=args.forever, as_json=args.json, stop_agents=args.stop_agents
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from kugetsu_tui.demo import run_dashboard_demo, run_demo

    home = Path(args.home).expanduser() if args.home else None
    if not args.headless:
        from kugetsu_tui.tui.app import run_dashboard

        return run_dashboard_demo(home=home, tasks=args.tasks, run_dashboard=run_dashboard)
    from kugetsu_tui.headless import run_headless

    return run_demo(
        home=home, headless=args.headless, tasks=args.tasks, as_json=args.json, run_headless=run_headless
    )
