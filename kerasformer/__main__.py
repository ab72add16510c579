"""`python -m kerasformer`: the command line."""
import sys

from kerasformer.cli import main

sys.exit(main())
