"""The learned model router: training set, versioned models, off-policy evaluation, promotion.

``features`` turns routing decisions into the training set, ``model`` trains and versions the
quality and cost predictors and their routing policy, ``evaluation`` estimates policies offline
from logged decisions and gates promotion. Nothing here imports Dagster.
"""
