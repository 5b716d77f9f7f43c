"""fetch: find, pin and sample the target and the candidate tasks.

Artifacts: catalog.json (every candidate: ref, pinned revision, columns, label names, sizes,
status and rejection reason), samples/target.score.parquet (target texts, no labels),
samples/target.eval.parquet (labelled evaluation sample), samples/<candidate>.parquet.

Usage: python -m entrypoints.fetch --help (run as a module: a script
named select.py would shadow the standard library's select module); same options as `hubselect fetch`.
"""

import sys

from hubselect.cli import main

if __name__ == "__main__":
    sys.exit(main(["fetch", *sys.argv[1:]]))
