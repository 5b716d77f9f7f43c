"""register: log the champion (an mlflow.pyfunc model logged from code,
hubselect/pipeline/tracking/served_model.py, for either formulation) and register it as
hubselect-<target> with the alias 'champion'; a new version each time, never an overwrite.

Artifacts: champion.json and the logged model.

Usage: python -m entrypoints.register --help (run as a module, like every entry point);
same options as `hubselect register`.
"""

import sys

from hubselect.cli import main

if __name__ == "__main__":
    sys.exit(main(["register", *sys.argv[1:]]))
