"""The Celery app of AURA's workers: ``celery -A aura_assets.celery_worker worker -Q dagster``.

Importing this module reads the settings (``AURA_CELERY_BROKER`` is required) and prepares the
Dagster home the tasks name; the worker then executes the step tasks that runs with the
``celery`` executor send (:mod:`aura_assets.executors`). Start workers with the same ``AURA_*``
environment as the processes that launch the runs, plus ``DAGSTER_HOME`` and, with Postgres
storage, ``AURA_DAGSTER_STORAGE_URL`` (:func:`aura_assets.instance.dagster_env`).
"""

from celery import Celery

from aura_assets.executors import celery_executor_for
from aura_assets.instance import prepare_dagster_home
from lakehouse.settings import Settings


def make_worker_app(settings: Settings) -> Celery:
    """The Celery app the executor sends to, with dagster-celery's step task registered."""
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_task

    prepare_dagster_home(settings)
    app = make_app(celery_executor_for(settings).app_args())  # type: ignore[attr-defined]
    create_task(app)
    return app


app = make_worker_app(Settings.from_env())

# The code location loads once, here, in the worker's main process: each pool process forks with
# it loaded, so a worker's first step does not pay for the import (about 7-10 s on 2 busy cores).
import aura_assets.definitions  # noqa: E402, F401
