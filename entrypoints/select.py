"""select: choose the sources worth tuning and prune the rest.

Scores in-process through the caches when run alone. Artifacts: selection.json (policy, summary,
every candidate with every measure, decision and reason), ranking.csv,
plots/scores_per_candidate.png.

Usage: python -m entrypoints.select --help (run as a module: a script
named select.py would shadow the standard library's select module); same options as `hubselect select`.
"""

import sys

from hubselect.cli import main

if __name__ == "__main__":
    sys.exit(main(["select", *sys.argv[1:]]))
