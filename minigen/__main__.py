import sys

from minigen.cli import main

sys.exit(main())
