"""borescope's engineer-side: the Textual app, the CLI and the connection layer.

Speaks only gRPC (``protos``): never imports ``agent``.
"""

__version__ = "0.1.0"
#: Contract major version this client speaks.
API_MAJOR = 1
