import sys

from aam.cli.main import main

sys.exit(main())
