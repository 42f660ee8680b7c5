"""Consumer groups: the classic group protocol and committed offsets (``__consumer_offsets``)."""
