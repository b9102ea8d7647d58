"""The command table of docs/cli.md, generated from the CLI's own definitions (the source of truth).

``python -m aura_assets.cli.reference`` rewrites the table between the markers
``<!-- cli-table:start -->`` and ``<!-- cli-table:end -->`` in docs/cli.md; ``--check`` exits 1
when the file differs (a test runs it). Every command, its arguments and every option appear.
"""

import re
import sys
from pathlib import Path

import click

START, END = "<!-- cli-table:start -->", "<!-- cli-table:end -->"
CLI_DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def _option(param: click.Option) -> str:
    names = " / ".join(param.opts + param.secondary_opts)
    if param.is_flag or param.count:
        return f"[{names}]"
    metavar = param.make_metavar(click.Context(click.Command("x"))).replace("|", "\\|")
    return f"[{names} {metavar}]"


def _usage(path: str, command: click.Command) -> str:
    parts = [path]
    for param in command.params:
        if isinstance(param, click.Argument):
            shown = param.name.upper() if param.name else "ARG"
            parts.append(shown if param.required else f"[{shown}]")
    parts += [_option(p) for p in command.params if isinstance(p, click.Option) and not p.hidden]
    return " ".join(parts)


def _rows(path: str, command: click.Command) -> list[tuple[str, str]]:
    if isinstance(command, click.Group):
        rows = []
        if any(isinstance(p, click.Option) for p in command.params) and path != "aura":
            rows.append((_usage(path, command), _help(command)))
        ctx = click.Context(command)  # list_commands / get_command: lazy commands included
        for name in sorted(command.list_commands(ctx)):
            sub = command.get_command(ctx, name)
            if sub is not None:
                rows += _rows(f"{path} {name}", sub)
        return rows
    return [(_usage(path, command), _help(command))]


def _help(command: click.Command) -> str:
    text = (command.help or command.short_help or "").strip().split("\n\n")[0]
    return " ".join(text.split()).replace("|", "\\|")


def table() -> str:
    """The markdown table of every command (global options first)."""
    from aura_assets.cli import main

    lines = ["| command | what it does |", "| --- | --- |"]
    lines.append(f"| `{_usage('aura', main)} COMMAND` | global options, before the command |")
    for usage, help_text in _rows("aura", main):
        lines.append(f"| `{usage}` | {help_text} |")
    return "\n".join(lines)


def render(doc: str) -> str:
    """``doc`` with its generated section replaced by the current table."""
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(doc):
        raise SystemExit(f"{CLI_DOC.name} has no {START} ... {END} section")
    return pattern.sub(lambda _: f"{START}\n{table()}\n{END}", doc)


def main(argv: list[str]) -> int:
    """Rewrite docs/cli.md's table, or with ``--check`` report whether it is current."""
    current = CLI_DOC.read_text()
    wanted = render(current)
    if "--check" in argv:
        if current != wanted:
            print("docs/cli.md's command table is stale: python -m aura_assets.cli.reference")
            return 1
        return 0
    CLI_DOC.write_text(wanted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
