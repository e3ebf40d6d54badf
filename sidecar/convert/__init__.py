"""agent results -> protobuf messages, one module per concern.

This is the only place that builds messages field by field.
"""
