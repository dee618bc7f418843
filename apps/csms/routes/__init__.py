"""The REST API's routes, one Blueprint per resource; :func:`libv4e_apps.csms.api.create_app`
registers them. Each module's ``blueprint(...)`` builds a fresh Blueprint over one
:class:`~libv4e.csms.CentralSystem` (the routes close over it)."""
