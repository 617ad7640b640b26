import sys

from fckernel.cli import main

sys.exit(main())
