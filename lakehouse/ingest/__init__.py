"""Getting data in: Redis streams, the one stream ingest path, event guards, tiering.

``contract`` is what a stream domain states (:class:`~lakehouse.ingest.contract.StreamContract`:
stream, tables, parser, Arrow conversion, key comparison, optional hook); ``stream_day`` is the
one ingest path of every stream domain (:func:`~lakehouse.ingest.stream_day.ingest_day`: read,
parse, split by day, key check, write-audit-publish, dead letters, settle, wait for entries
another run holds); ``streams`` reads and acknowledges stream entries (consumer groups, claims,
backlog) and records dead letters; ``guards`` are the event guards every domain's parser
shares; ``tiering`` moves rows from a hot store into Iceberg and trims the hot store only after
the archive commit is verified.
"""
