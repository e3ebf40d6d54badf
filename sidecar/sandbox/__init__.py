"""The sandbox pod: a shell-less demo app and the sidecar in shared namespaces.

``python -m sidecar.sandbox [--headless]`` runs it; ``start_sandbox()`` is what
tests use. Pod mode needs root; without root the sandbox falls back to local
mode (plain child processes). Keep this module free of imports: ``pause`` and
``appinit`` run as ``-m sidecar.sandbox.<name>`` and import it first.
"""
