"""`autotune compare`: runs read through MLflow's client API, grouped, summarized and plotted.

``fetch`` reads runs (one paginated search), ``groups`` picks each run's value and group and
computes means with 95% intervals, ``comparison`` renders table, CSV and JSON, ``plots`` and
``report`` make the self-contained HTML page.
"""
