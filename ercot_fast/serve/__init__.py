"""Running the service: ``gunicorn`` (the application, arbiter and worker
classes) and ``supervisor`` (the master's forked children: the Flight server)."""
