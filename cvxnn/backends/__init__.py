"""Solver backends behind one entry point, :func:`cvxnn.solve`.

* :mod:`cvxnn.backends.cvxpy_adapter` -- the one adapter for every CVXPY solver: one status map,
  typed errors, the pre-compile memory estimate;
* :mod:`cvxnn.backends.native_adapter` -- ``"rfista"``, ``"working_set"``, ``"al"`` (and
  ``"auto"`` / ``"native"``) through :func:`cvxnn.native.solve_native`;
* :mod:`cvxnn.backends.registry` -- :func:`~cvxnn.backends.registry.solve`, the registry of
  adapters and the solver names;
* :mod:`cvxnn.backends.capabilities` -- what each backend takes, from the losses' flags.

The package itself imports nothing, so the program layer can call the CVXPY adapter without
importing the registry (which builds programs).
"""
