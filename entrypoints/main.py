"""main: the whole job as nested runs, reusing steps that already finished with the same params.

Artifacts: those of each step, on the step's nested run.

Usage: python -m entrypoints.main --help (run as a module: a script
named select.py would shadow the standard library's select module); same options as `hubselect main`.
"""

import sys

from hubselect.cli import main

if __name__ == "__main__":
    sys.exit(main(["main", *sys.argv[1:]]))
