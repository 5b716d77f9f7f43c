"""A terminal screenshot (SVG) of a hubselect command's console ending, in a 100-column pseudo-terminal.

Runs the command with its stdout on a pseudo-terminal sized ``--columns`` x 50 (so hubselect
sees a terminal: colours on, the terminal's width), its stderr (progress, logs) in
``<output>.stderr.txt``, and draws what the terminal received as an SVG with rich
(``Console.save_svg``), plus the plain text beside it (``<output>.txt``). A documentation tool,
not a test. Usage, from the repository root::

    python scripts/console_screenshot.py --output docs/screenshots/console_select.svg -- \\
        hubselect select --target ../shared/data/fdu-mtl/books --candidates ...
"""

from __future__ import annotations

import argparse
import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path


def run_in_pty(command: list[str], columns: int, stderr: Path) -> tuple[int, str]:
    """Run ``command`` with stdout on a ``columns``-wide pseudo-terminal; its exit code and output."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    with open(stderr, "wb") as err:
        proc = subprocess.Popen(command, stdout=slave, stderr=err, stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(), b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, type=Path, help="the SVG to write")
    parser.add_argument("--columns", type=int, default=100)
    parser.add_argument("--title", default="", help="window title (default: the command)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    code, text = run_in_pty(command, args.columns, args.output.with_suffix(".stderr.txt"))
    from rich.console import Console
    from rich.text import Text

    console = Console(record=True, width=args.columns, file=io.StringIO(), force_terminal=True)
    console.print(Text.from_ansi(text), soft_wrap=True)
    title = args.title or " ".join(command[:2])
    console.save_svg(str(args.output), title=title)
    plain = "".join(line.rstrip() + "\n" for line in Text.from_ansi(text).plain.splitlines())
    args.output.with_suffix(".txt").write_text(plain, encoding="utf-8")
    print(f"{args.output}: exit {code}, {len(text.splitlines())} lines", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
