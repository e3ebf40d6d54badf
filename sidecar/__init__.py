"""The borescope sidecar: a gRPC server over the ``agent`` inspection engine."""

__version__ = "0.1.0"
#: Contract version served; clients refuse a different major.
API_VERSION = "1.0"
