"""Fleet mode: one question to every replica, answers merged.

Kubernetes is the distributed engine: a fleet is a list of pods (from several
``--addr`` values, ``deploy/NAME`` or ``-l key=value``), each reached through
its own sidecar; nothing here is a cluster layer. ``members`` turns the
connection flags into members, ``fanout`` asks them all with bounded
concurrency and a per-pod deadline (partial results, one error per failed
pod), ``merge`` combines the answers, ``cli`` prints them and ``overview``
gathers the one-row-per-pod health the TUI's fleet screen shows.
"""
