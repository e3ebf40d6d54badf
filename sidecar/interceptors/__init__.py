"""Server interceptors, one concern per module: audit, auth, limits, errors.

Order matters: the first is outermost. Audit sees the final status of every
call, including ones auth refused; errors is innermost so it sees the agent's
exceptions before anything else does.
"""
