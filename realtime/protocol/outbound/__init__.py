"""What the server sends (PROTOCOL.md §5): one documentation-grade pydantic model per event.

The server builds its frames from plain dicts on the hot path; these models describe them for
the AsyncAPI document (``realtime.ops.asyncapi``) and the consumer tests check every frame the
server really sends against that document. ``catalog`` says who receives each event and what
answers each request.
"""
