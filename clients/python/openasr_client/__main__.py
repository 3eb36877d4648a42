"""``python -m openasr_client`` runs the ``openasr`` command."""

import sys

from openasr_client.cli import main

sys.exit(main())
