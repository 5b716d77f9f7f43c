"""score: divergence between the target's domain and each candidate's (lower = closer).

Fetches in-process through the cache when run alone. Artifacts: scores.csv (candidate x
measure), timings.json, plots/measure_correlation.png, and the fetch artifacts when run alone.

Usage: python -m entrypoints.score --help (run as a module: a script
named select.py would shadow the standard library's select module); same options as `hubselect score`.
"""

import sys

from hubselect.cli import main

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))
