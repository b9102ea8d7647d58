"""Dagster definitions of the AURA lakehouse (thin layer over the ``lakehouse`` library).

Dagster warns that some parameters our definitions use on purpose (``backfill_policy``,
sensor ``owners``) are beta or preview. Nobody running ``aura``, ``aura ui`` or a code server
can act on that, so the notices are filtered here, where every process loading these
definitions passes first (by message: importing Dagster for the class would slow the CLI).
"""

import warnings

warnings.filterwarnings("ignore", message=r".* is currently in (beta|preview)")
