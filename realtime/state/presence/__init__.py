"""Cross-process presence (PROTOCOL.md §5.5): who is connected, where, and with what status."""
