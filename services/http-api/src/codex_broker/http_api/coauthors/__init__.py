"""Co-authors of Codex's commits: the endpoints the commit-msg hook and the admin page call.

`routes.coauthor_routes(ctx)` and `routes.OPENAPI_PATHS` are what `create_app` mounts. The
decisions (who is credited, what the form asks) live in `codex_broker.libs.authors` and
`codex_broker.libs.coauthor_views` (a platform-neutral form each ingress renders), shared with
the orchestrator.
"""
