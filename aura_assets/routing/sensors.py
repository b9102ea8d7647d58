"""Start ingestion when the routing stream holds entries the lakehouse has not acknowledged."""

from aura_assets.routing.jobs import routing_ingest_job
from aura_assets.streams import stream_sensor
from lakehouse.routing import CONTRACT

routing_stream_sensor = stream_sensor("routing_stream_sensor", CONTRACT, routing_ingest_job)
