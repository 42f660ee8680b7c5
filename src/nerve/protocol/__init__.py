"""The Kafka wire protocol without I/O: framing, request/response codec and RecordBatch v2.

Bytes in, typed objects out (and back). Message types come from ``kio``; nothing here touches a
socket, so everything is tested with plain byte strings. Depends on nothing else in nerve.
"""
