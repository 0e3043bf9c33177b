"""Operating deployed projections: deploy, promote, read views, fold live, rebuild and retry, status.

- :mod:`~jsproj.projections.deploy`: validate, register, create storage, rebuild (and the DBA's script);
- :mod:`~jsproj.projections.promote`: asking for the switch to a version built beside the deployed one;
- :mod:`~jsproj.projections.views`: documents by id, pages, queries by field, exports;
- :mod:`~jsproj.projections.live`: folding one stream on demand, storing nothing;
- :mod:`~jsproj.projections.upcasting`: a stream's events as projections see them, through the upcasters;
- :mod:`~jsproj.projections.operations`: rebuild, retry, dead letters;
- :mod:`~jsproj.projections.status`: where projections and subscriptions stand, and waiting for them.
"""
