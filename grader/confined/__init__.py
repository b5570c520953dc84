"""Running student code confined: the static policy, the sandboxes, their child, the wire format."""
