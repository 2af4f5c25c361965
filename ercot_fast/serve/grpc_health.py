"""The standard gRPC health service (``grpc.health.v1.Health``), for gRPC
probes (Kubernetes ``grpc:``, grpc_health_probe, load balancers) of the Arrow
Flight server.

pyarrow's Flight server cannot host another gRPC service, so this one runs in
a supervised child of its own (``serve.supervisor``) on ``--health-addr``,
forked from the master like the Flight child: grpcio is imported only there
(gRPC's threads and fork() do not mix). It answers from what the master
publishes (``store.shared``): SERVING for ``""`` (the whole server) and for
``arrow.flight.protocol.FlightService`` while prices are loaded, the Flight
child serves and the service is not draining; NOT_SERVING otherwise; any other
name is NOT_FOUND (Check) or SERVICE_UNKNOWN (Watch). grpcio-health-checking's
own servicer answers Check and Watch; this child sets its statuses.
"""
import logging
import os

from ercot_fast import health

log = logging.getLogger(__name__)

FLIGHT_SERVICE = "arrow.flight.protocol.FlightService"
SERVICES = ("", FLIGHT_SERVICE)
FOLLOW_SECONDS = 0.2  # how often the child looks at what the master published
_MAX_THREADS = 4  # Check is quick; Watch holds no thread (the servicer's non-blocking mode)


def serving(follower):
    """True when the gRPC health service says SERVING: the readiness of the
    published store (prices loaded, not draining) and the Flight child up."""
    return follower.flight_serving and health.readiness(follower.store, follower.draining).serving


def serve(child, follower, addr):
    """The health child's target: serve ``grpc.health.v1.Health`` on ``addr``
    until stopped, following the master's published state."""
    from concurrent import futures

    import grpc
    from grpc_health.v1 import health as grpc_health
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    servicer = grpc_health.HealthServicer(experimental_non_blocking=True)
    statuses = {True: health_pb2.HealthCheckResponse.SERVING, False: health_pb2.HealthCheckResponse.NOT_SERVING}

    def update(now_serving):
        for name in SERVICES:
            servicer.set(name, statuses[now_serving])

    current = serving(follower)
    update(current)  # NOTE: the servicer starts with "" SERVING: set before it answers anything
    # NOTE: no SO_REUSEPORT (grpc's default): a port in use is an error, not a shared port
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=_MAX_THREADS), options=[("grpc.so_reuseport", 0)])
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    try:
        port = server.add_insecure_port(addr)
    except RuntimeError as exc:  # grpcio raises when it cannot bind
        raise OSError(f"cannot listen on {addr}: {exc}") from None
    if not port:  # older grpcio returns 0
        raise OSError(f"cannot listen on {addr}")
    server.start()
    log.info("gRPC health serving on %s (pid %d, port %d): %s", addr, os.getpid(), port, _name(current))
    child.ready(str(port))
    while child.wait_for_stop(timeout=FOLLOW_SECONDS) is None:
        if follower.changed():
            follower.refresh()
        now_serving = serving(follower)
        if now_serving != current:
            current = now_serving
            update(current)
            log.info("gRPC health: %s", _name(current))
    servicer.enter_graceful_shutdown()  # NOT_SERVING to every watcher, then the stop
    server.stop(grace=1.0).wait()


def _name(now_serving):
    return "SERVING" if now_serving else "NOT_SERVING"
