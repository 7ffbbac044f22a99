"""`python -m openai_stub`: the stub server on 127.0.0.1 (see openai_stub.server)."""

import sys

from openai_stub.server import main

sys.exit(main())
