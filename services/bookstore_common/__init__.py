"""Code shared by the catalog and orders services.

Modules: settings (env config base), logs (JSON logging), context (request id and its
propagation to httpx), problems (domain errors -> problem+json), middleware (request id,
metrics, 500s), metrics, db (engine + session dependency), rawpool (asyncpg pool for the
hot paths), security (X-API-Key), health, migrations (Alembic under an advisory lock),
app (create_service_app), cli (run_cli).
"""
