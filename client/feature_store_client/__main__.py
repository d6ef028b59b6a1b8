"""`python -m feature_store_client`: the `feature-store` command line."""

import sys

from feature_store_client.cli import main

sys.exit(main())
