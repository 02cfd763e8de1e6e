"""GET /health against real parts: a private Redis (broker, result backend, coordination and the
heartbeats), a real Celery worker and beat, MiniDNS and PostgreSQL. Each component is broken for
real (a dead port, a server that accepts and never answers, a killed process) and /health must say
503 naming it, within a second."""
import json
import socket
import time

import pytest
import requests

from dnsctl import health
from tests.conftest import wait_until
from tests.processes import RedisServer, celery_beat, celery_worker, stop_all, web
from tests.servers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
COMPONENTS = {"database", "broker", "result_backend", "workers", "beat", "minidns", "coordination"}


class BlackHole:
    """A TCP server that accepts connections (the kernel does) and never says a word."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def system(system_env, minidns_address, tmp_path_factory):
    """A worker and beat on a private Redis, beating every 0.3 s."""
    redis_server = RedisServer().start()
    env = {**system_env, "REDIS_URL": redis_server.url, "COORDINATION_URL": redis_server.url,
           "HEARTBEAT_INTERVAL": "0.3", "LOG_ROUTINE_LEVEL": "DEBUG"}
    beat_dir = str(tmp_path_factory.mktemp("beat"))
    processes = {"worker": celery_worker(env), "beat": celery_beat(env, beat_dir)}
    yield {"redis": redis_server, "env": env, "processes": processes,
           "start": {"worker": lambda: celery_worker(env), "beat": lambda: celery_beat(env, beat_dir)}}
    stop_all(processes.values())
    redis_server.stop()


@pytest.fixture
def conf(settings, system, minidns_address):
    """This process's health settings pointed at the system; every check probes afresh."""
    url = system["redis"].url
    settings.REDIS_URL = settings.CELERY_BROKER_URL = settings.CELERY_RESULT_BACKEND = settings.COORDINATION_URL = url
    settings.HEALTH = {**settings.HEALTH, "CACHE_SECONDS": 0, "WORKER_MAX_AGE": 1.5, "BEAT_MAX_AGE": 2.5,
                       "MINIDNS_HOST": minidns_address[0], "MINIDNS_PORT": minidns_address[1]}
    wait_until(lambda: health.check()[0], timeout=30, message="every component up")
    return settings


def get_health(client):
    started = time.monotonic()
    response = client.get("/health")
    return response, response.json(), time.monotonic() - started


def test_all_up_is_200_with_each_component_and_no_secrets(client, conf, system):
    response, body, took = get_health(client)
    assert response.status_code == 200 and took < 1.0
    assert body["status"] == "ok" and body["down"] == []
    assert set(body["components"]) == COMPONENTS
    assert all(c["state"] == "up" and c["required"] for c in body["components"].values())
    assert body["components"]["workers"]["live"] == 1 and body["components"]["workers"]["age"] < 1.5
    assert body["components"]["beat"]["live"] == 1
    text = response.content.decode()
    for secret in (str(system["redis"].port), conf.SECRET_KEY, "127.0.0.1", "postgres"):
        assert secret not in text
    assert client.post("/health").status_code == 405  # reads only, no body taken


@pytest.mark.parametrize("component, setting", [
    ("broker", "CELERY_BROKER_URL"), ("result_backend", "CELERY_RESULT_BACKEND"), ("coordination", "COORDINATION_URL"),
])
@pytest.mark.parametrize("how", ["refused", "hangs"])
def test_a_redis_down_or_hanging_is_503_naming_it(client, conf, component, setting, how):
    hole = BlackHole() if how == "hangs" else None
    port = hole.port if hole else free_port(udp_too=False)
    setattr(conf, setting, f"redis://127.0.0.1:{port}/0")
    try:
        response, body, took = get_health(client)
    finally:
        if hole:
            hole.close()
    assert response.status_code == 503 and took < 1.0
    assert body["status"] == "down" and body["down"] == [component]
    assert body["components"][component]["state"] == "down"
    assert str(port) not in response.content.decode()


def test_minidns_not_answering_is_503(client, conf):
    conf.HEALTH = {**conf.HEALTH, "MINIDNS_PORT": free_port()}
    response, body, took = get_health(client)
    assert response.status_code == 503 and took < 1.0 and body["down"] == ["minidns"]


@pytest.mark.parametrize("name, component", [("worker", "workers"), ("beat", "beat")])
def test_a_killed_worker_or_beat_is_503_once_its_heartbeat_is_stale(client, conf, system, name, component):
    process = system["processes"][name]
    process.kill()  # SIGKILL: no goodbye, only the heartbeat going stale says it
    try:
        wait_until(lambda: get_health(client)[1]["down"] == [component], timeout=5, interval=0.2,
                   message=f"{component} reported down")
        response, body, took = get_health(client)
        assert response.status_code == 503 and took < 1.0
        assert "heartbeat" in body["components"][component]["error"]
    finally:
        process.stop()
        system["processes"][name] = system["start"][name]()
    wait_until(lambda: get_health(client)[0], timeout=30, message="all up again")


def test_a_worker_that_stops_cleanly_is_down_at_once(client, conf, system):
    system["processes"]["worker"].stop()  # SIGTERM: the worker removes its own heartbeat
    try:
        response, body, _ = get_health(client)
        assert response.status_code == 503 and body["down"] == ["workers"]
        assert body["components"]["workers"]["state"] == "down"
    finally:
        system["processes"]["worker"] = celery_worker(system["env"])


def test_everything_down_answers_within_a_second(client, conf):
    holes = [BlackHole() for _ in range(4)]
    try:
        conf.CELERY_BROKER_URL, conf.CELERY_RESULT_BACKEND, conf.REDIS_URL, conf.COORDINATION_URL = (
            f"redis://127.0.0.1:{hole.port}/0" for hole in holes)
        conf.HEALTH = {**conf.HEALTH, "MINIDNS_PORT": free_port()}
        for _ in range(3):  # hung probes are not started again: every call stays fast
            response, body, took = get_health(client)
            assert response.status_code == 503 and took < 1.0
            assert set(body["down"]) == COMPONENTS - {"database"}
    finally:
        for hole in holes:
            hole.close()


def test_one_answer_per_cache_period(client, conf):
    conf.HEALTH = {**conf.HEALTH, "CACHE_SECONDS": 30}
    first = client.get("/health").json()
    conf.HEALTH = {**conf.HEALTH, "MINIDNS_PORT": free_port()}  # down now, but the answer is cached
    assert client.get("/health").json() == first


def test_not_required_components_are_reported_but_do_not_fail(client, conf):
    conf.HEALTH = {**conf.HEALTH, "MINIDNS_PORT": free_port(), "REQUIRED": ["database", "broker"]}
    response, body, _ = get_health(client)
    assert response.status_code == 200 and body["down"] == []
    assert body["components"]["minidns"] == {**body["components"]["minidns"], "state": "down", "required": False}


def test_a_hanging_database_under_gunicorn_is_503_within_a_second(system, minidns_address):
    """The real web process with its database on a server that never answers."""
    hole = BlackHole()
    port = free_port(udp_too=False)
    env = {**system["env"], "DATABASE_URL": f"postgres://postgres@127.0.0.1:{hole.port}/dnsctl",
           "MINIDNS_PORT": str(minidns_address[1])}
    server = web(env, port, workers=1)  # one: the request that warms it up surely warms the one that answers
    try:
        for _ in range(2):  # the worker loads the app's URLs and views first (0.3 s on a loaded machine)
            requests.get(f"http://127.0.0.1:{port}/no-such-path", timeout=10)
        for check in range(3):
            if check:
                time.sleep(1.1)  # past the cache: a new check, the database probe still hung
            started = time.monotonic()
            response = requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
            took = time.monotonic() - started
            assert response.status_code == 503 and took < 1.0
            body = json.loads(response.content)
            assert body["down"] == ["database"] and body["components"]["database"]["state"] == "down"
    finally:
        hole.close()  # first: the hung probes' connections are reset, so gunicorn's workers can exit
        server.stop()


def test_routine_ticks_are_not_logged_at_info(system):
    """Beat fires the outbox relay every second: neither beat nor the worker says so at INFO."""
    worker, beat = system["processes"]["worker"], system["processes"]["beat"]
    wait_until(lambda: health.heartbeat.newest("beat", 5, health._redis(system["redis"].url)), timeout=10,
               message="beat ticking")
    time.sleep(3)  # three relay ticks at least
    assert "beat: Starting..." in beat.log_text() and " ready." in worker.log_text()  # INFO still logs
    assert "Sending due task" not in beat.log_text()
    assert "relay_events[" not in worker.log_text()  # (the banner lists the task, no run of it)
