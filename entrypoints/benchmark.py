"""benchmark: the brute-force transfer matrix (every task tuned once as a source, evaluated on
every other task), ranking metrics of every measure and policy against it, a learned policy
(leave-one-target-out) and a Markdown/HTML report.

Resumable: rerun the same command and finished targets and pairs are skipped; other settings
on the same --output folder are refused. Artifacts: report/ (matrix CSVs and heatmap, policy
tables, scatter plots, regret-vs-runtime curve, report.md/html), learned_policy.json (for
policy=learned), benchmark.json; one nested run per source -> target pair.

Usage: python -m entrypoints.benchmark --help (run as a module, like the other entry points);
same options as `hubselect benchmark`. Smoke run: python -m entrypoints.benchmark --quick
"""

import sys

from hubselect.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", *sys.argv[1:]]))
