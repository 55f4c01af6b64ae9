"""``python -m cvxnn``: the command line (see :mod:`cvxnn.cli`)."""

from .cli import main

raise SystemExit(main())
