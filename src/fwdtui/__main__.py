"""`python -m fwdtui`: the same as the `fwdtui` command."""
from fwdtui.cli import main
import sys

sys.exit(main())
