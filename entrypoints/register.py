"""register: log the champion (mlflow.transformers flavour for a label-aligned head, a pyfunc
wrapping the transformers encoder for label-description matching) and register it as
hubselect-<target> with the alias 'champion'; a new version each time, never an overwrite.

Artifacts: champion.json and the logged model.

Usage: python -m entrypoints.register --help (run as a module, like every entry point);
same options as `hubselect register`.
"""

import sys

from hubselect.cli import main

if __name__ == "__main__":
    sys.exit(main(["register", *sys.argv[1:]]))
