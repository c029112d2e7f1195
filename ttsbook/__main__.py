"""``python -m ttsbook``: the command line of the runs wing (:mod:`ttsbook.runs.cli`)."""
import sys

from ttsbook.runs.cli import main

if __name__ == "__main__":
    sys.exit(main())
