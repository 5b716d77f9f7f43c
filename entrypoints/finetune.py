"""finetune: fine-tune on each selected source (one model per source, cached by source
revision + settings, so a source is never tuned twice with the same settings).

Selects in-process through the caches when run alone. Artifacts: tuned.json (per source:
formulation, model folder, train seconds, examples/s, held-out loss/accuracy, from_cache).

Usage: python -m entrypoints.finetune --help (run as a module, like every entry point);
same options as `hubselect finetune`.
"""

import sys

from hubselect.cli import main

if __name__ == "__main__":
    sys.exit(main(["finetune", *sys.argv[1:]]))
