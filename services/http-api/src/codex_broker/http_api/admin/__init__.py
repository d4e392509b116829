"""Admin API and page of the http-api: overview, sessions, auth profiles, GitHub author mappings.

`routes.admin_routes(ctx)` and `routes.OPENAPI_PATHS` are what `create_app` mounts.
"""
