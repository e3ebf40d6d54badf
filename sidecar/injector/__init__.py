"""The mutating admission webhook that adds the borescope sidecar to labelled pods."""
