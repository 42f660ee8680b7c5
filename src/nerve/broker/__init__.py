"""The embedded single-node broker that speaks the Kafka wire protocol.

``server`` owns the sockets (one asyncio loop), ``handlers`` answer one API family each,
``log`` stores partitions on disk the way Kafka does, ``topics`` keeps topic metadata and configs.
Depends on ``nerve.protocol``.
"""
