import sys

from visionfw.cli import run

sys.exit(run())
