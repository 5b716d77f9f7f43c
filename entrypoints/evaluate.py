"""evaluate: zero-shot accuracy and macro-F1 on the target's evaluation split, for the untuned
baseline and every tuned source; one nested run per source -> target pair.

Artifacts: evaluation.json (per-class reports), evaluation.csv, plots/accuracy_per_source.png.

Usage: python -m entrypoints.evaluate --help (run as a module, like every entry point);
same options as `hubselect evaluate`.
"""

import sys

from hubselect.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
