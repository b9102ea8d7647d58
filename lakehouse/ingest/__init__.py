"""Getting data in: Redis streams, the one stream-day mechanism, event guards, tiering.

``streams`` reads and acknowledges stream entries (consumer groups, claims, backlog);
``stream_day`` writes one day of a stream through write-audit-publish and settles its entries;
``guards`` are the event guards every domain's parser shares; ``tiering`` moves rows from a hot
store into Iceberg and trims the hot store only after the archive commit is verified.
"""
