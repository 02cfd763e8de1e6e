"""Secure by default (issue 9, items 4 and 8): request body limits against the real server (gunicorn),
per-token write rate limits, JSON errors for every path and method, and no start without a secret key."""
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.conftest import wait_until
from tests.processes import ROOT, web
from tests.servers import free_port
from zones import accounts
from zones.models import Zone
from zones.services import pools

BODY_LIMIT, IMPORT_LIMIT = 2048, 4096  # the test server's; small enough to stay within one read of gunicorn's
SERVER_RATE = 5  # writes per token per day on the test server


def token_for(username, project, role="member") -> str:
    return accounts.issue_token(accounts.api_user(username, project, role))


def zone_body(name) -> dict:
    return {"name": name, "email": f"hostmaster@{name.rstrip('.')}"}


def fresh_window(seconds=86400, needed=60):
    """Wait, if need be, until the current rate window has `needed` seconds left (windows are fixed)."""
    left = seconds - time.time() % seconds
    if left < needed:
        time.sleep(left + 0.1)


def assert_error(response_code, body, code, error_type):
    assert response_code == code, body
    assert body["code"] == code and body["type"] == error_type and body["message"], body


# --- request bodies, against gunicorn ---------------------------------------------------------

@pytest.fixture(scope="module")
def server(system_env):
    """gunicorn with two workers of six threads, small body limits and a small write rate. Its
    changes go to an in-memory broker: no worker of other tests writes to the database while a
    test's teardown flushes it (that deadlocked)."""
    port = free_port(udp_too=False)
    env = {**system_env, "CELERY_BROKER_URL": "memory://",
           "API_MAX_BODY_SIZE": str(BODY_LIMIT), "IMPORT_MAX_BODY_SIZE": str(IMPORT_LIMIT),
           "API_WRITE_RATE": f"{SERVER_RATE}/day", "GUNICORN_CMD_ARGS": "--threads 6 --access-logformat '%(p)s %(s)s %(r)s'"}
    process = web(env, port)
    try:
        process.wait_for(lambda: process.log_text().count("Booting worker") == 2, what="running 2 workers")
        yield port, process
    finally:
        process.stop()


@pytest.fixture
def tenant(transactional_db, server):
    """A pool and a member token, committed: the server's workers see them."""
    pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}])
    return token_for("tenant", "p1")


def raw_request(port, head: str, body: bytes = b""):
    """Send bytes as they are (lengths that lie, chunks) in one write; returns (status, headers, JSON or text)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        content = response.read()
    try:
        content = json.loads(content)
    except ValueError:
        content = content.decode(errors="replace")
    return response.status, response.headers, content


def post_head(path, token=None, **headers) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json", "Connection: close"]
    lines += [f"X-Auth-Token: {token}"] if token else []
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return "\n".join(lines) + "\n"


def padded(document: dict, size: int) -> bytes:
    """The JSON document, padded with spaces to exactly size bytes."""
    text = json.dumps(document).encode()
    return text + b" " * (size - len(text))


def test_a_body_of_exactly_the_limit_is_taken_one_byte_more_is_413_and_nothing_is_written(server, tenant):
    port, _ = server
    body = padded(zone_body("exact.example.com."), BODY_LIMIT)
    status, _, reply = raw_request(port, post_head("/v2/zones", tenant, Content_Length=len(body)), body)
    assert status == 202, reply

    body = padded(zone_body("over.example.com."), BODY_LIMIT + 1)
    status, _, reply = raw_request(port, post_head("/v2/zones", tenant, Content_Length=len(body)), body)
    assert_error(status, reply, 413, "request_too_large")
    assert str(BODY_LIMIT) in reply["message"]
    assert list(Zone.objects.values_list("name", flat=True)) == ["exact.example.com."]


def test_an_oversize_declared_length_is_answered_before_the_body_is_sent(server, tenant):
    """The server answers at once, without waiting for (or reading) a byte of the body, and before auth."""
    port, _ = server
    started = time.monotonic()
    status, _, reply = raw_request(port, post_head("/v2/zones", None, Content_Length=50 * 1024 * 1024))
    assert_error(status, reply, 413, "request_too_large")
    assert time.monotonic() - started < 5
    assert not Zone.objects.exists()


def test_a_content_length_that_understates_the_body_cuts_it_there(server, tenant):
    """Nothing past the declared length is read: the JSON is cut short, a 400, nothing written."""
    port, _ = server
    body = padded(zone_body("lying.example.com."), BODY_LIMIT * 2 - 300)
    status, _, reply = raw_request(port, post_head("/v2/zones", tenant, Content_Length=20), body)
    assert_error(status, reply, 400, "invalid_json")
    assert not Zone.objects.exists()


def test_a_body_without_content_length_is_not_read(server, tenant):
    port, _ = server
    body = padded(zone_body("nolength.example.com."), BODY_LIMIT * 2 - 300)
    status, _, reply = raw_request(port, post_head("/v2/zones", tenant), body)
    assert status == 400 and "name" in reply["errors"], reply  # an empty body: the name is missing
    assert not Zone.objects.exists()


def test_a_chunked_body_is_refused_unread(server, tenant):
    port, _ = server
    for size in (100, BODY_LIMIT * 2):
        document = padded(zone_body("chunked.example.com."), size)
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(document[i:i + 512]), document[i:i + 512])
                          for i in range(0, len(document), 512)) + b"0\r\n\r\n"
        status, _, reply = raw_request(port, post_head("/v2/zones", tenant, Transfer_Encoding="chunked"), chunks)
        assert_error(status, reply, 411, "length_required")
    assert not Zone.objects.exists()


def test_content_length_with_transfer_encoding_is_refused_by_gunicorn(server, tenant):
    port, _ = server
    document = json.dumps(zone_body("smuggled.example.com.")).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(document), document)
    status, _, _ = raw_request(port, post_head("/v2/zones", tenant, Content_Length=len(chunked),
                                               Transfer_Encoding="chunked"), chunked)
    assert status == 400
    assert not Zone.objects.exists()


def test_zone_file_imports_have_their_own_limit(server, tenant):
    port, _ = server
    path = "/v2/zones/tasks/imports"
    head = "\n".join([f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: text/dns", "Connection: close",
                      f"X-Auth-Token: {tenant}"])
    zone_file = b"$ORIGIN example.com.\n" + b"www 300 IN A 192.0.2.1\n" * ((BODY_LIMIT + 500) // 24)
    assert BODY_LIMIT < len(zone_file) < IMPORT_LIMIT
    status, _, reply = raw_request(port, f"{head}\nContent-Length: {len(zone_file)}\n", zone_file)
    assert status != 413, reply  # past the API's limit, within the imports'
    status, _, reply = raw_request(port, f"{head}\nContent-Length: {IMPORT_LIMIT + 1}\n")
    assert_error(status, reply, 413, "request_too_large")
    assert str(IMPORT_LIMIT) in reply["message"]


@pytest.mark.django_db
def test_an_oversize_admin_form_post_is_413(client, settings):
    settings.API_MAX_BODY_SIZE = 1024
    response = client.post("/admin/login/", {"username": "admin", "password": "x" * 2000})
    assert_error(response.status_code, response.json(), 413, "request_too_large")


# --- write rate limits ------------------------------------------------------------------------

@pytest.fixture
def write_rate(settings):
    """Three writes per token per day (fixed windows: not across midnight), from a clean count."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"write": "3/day"}}
    fresh_window()
    return 3


@pytest.fixture
def pool(db):
    return pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}])


def writes(client, prefix, count):
    return [client.post("/v2/zones", zone_body(f"{prefix}{i}.example.com."), format="json") for i in range(count)]


def test_the_write_after_the_limit_is_429_with_retry_after_and_writes_nothing(pool, write_rate):
    alice = APIClient(HTTP_X_AUTH_TOKEN=token_for("alice", "p1"))
    responses = writes(alice, "a", write_rate + 2)
    assert [r.status_code for r in responses] == [202] * write_rate + [429, 429]
    assert_error(429, responses[-1].json(), 429, "over_rate_limit")
    assert 0 < int(responses[-1]["Retry-After"]) <= 86400
    assert Zone.objects.count() == write_rate
    zone_id = responses[0].json()["id"]
    # every kind of write counts, not only creates
    assert alice.patch(f"/v2/zones/{zone_id}", {"ttl": 600}, format="json").status_code == 429
    assert alice.delete(f"/v2/zones/{zone_id}").status_code == 429
    zone = Zone.objects.get(id=zone_id)
    assert zone.ttl != 600 and zone.deleted_at is None


def test_reads_are_not_throttled(pool, write_rate):
    alice = APIClient(HTTP_X_AUTH_TOKEN=token_for("alice", "p1"))
    writes(alice, "a", write_rate + 1)
    assert [alice.get("/v2/zones").status_code for _ in range(write_rate * 3)] == [200] * write_rate * 3


def test_two_tokens_have_their_own_budgets(pool, write_rate):
    alice = APIClient(HTTP_X_AUTH_TOKEN=token_for("alice", "p1"))
    bob = APIClient(HTTP_X_AUTH_TOKEN=token_for("bob", "p2"))
    assert [r.status_code for r in writes(alice, "a", write_rate + 1)][-1] == 429
    assert [r.status_code for r in writes(bob, "b", write_rate)] == [202] * write_rate
    assert Zone.objects.filter(project_id="p2").count() == write_rate


def test_the_cache_key_holds_no_token(pool, write_rate):
    from django.core.cache import cache

    key = token_for("alice", "p1")
    writes(APIClient(HTTP_X_AUTH_TOKEN=key), "a", 1)
    stored = cache._cache.get_client().keys("*throttle_write_*")  # the Redis behind the cache
    assert stored and not any(key.encode() in name for name in stored)


def test_admins_are_exempt_unless_configured(pool, write_rate, settings):
    admin = APIClient(HTTP_X_AUTH_TOKEN=token_for("root", "ops", role="admin"))
    assert [r.status_code for r in writes(admin, "x", write_rate + 2)] == [202] * (write_rate + 2)
    settings.API_THROTTLE_ADMINS = True
    assert [r.status_code for r in writes(admin, "y", write_rate + 1)] == [202] * write_rate + [429]
    assert Zone.objects.count() == 2 * write_rate + 2


def test_writes_go_through_when_the_cache_is_down(pool, write_rate, settings, caplog):
    """PostgreSQL takes writes while Redis is down, so the API does; the limit waits for the cache."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{free_port(udp_too=False)}/0"}}
    alice = APIClient(HTTP_X_AUTH_TOKEN=token_for("alice", "p1"))
    assert [r.status_code for r in writes(alice, "a", write_rate + 1)] == [202] * (write_rate + 1)
    assert "write rate limit not applied" in caplog.text


def test_gunicorn_workers_share_one_budget(server, tenant):
    """Twelve writes at once on two workers (six threads each): exactly the rate's five land, whichever
    worker took them (DRF's own throttle, which reads and writes back a list, lets most of them in)."""
    port, process = server
    fresh_window()
    before = process.log_text()

    def create(i):
        return requests.post(f"http://127.0.0.1:{port}/v2/zones", json=zone_body(f"burst{i}.example.com."),
                             headers={"X-Auth-Token": tenant}, timeout=30)

    with ThreadPoolExecutor(12) as executor:
        responses = list(executor.map(create, range(12)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [202] * SERVER_RATE + [429] * (12 - SERVER_RATE), [r.text for r in responses]
    assert all(r.headers["Retry-After"] for r in responses if r.status_code == 429)
    assert Zone.objects.count() == SERVER_RATE
    log = wait_until(lambda: (text := process.log_text()[len(before):]).count("POST /v2/zones") >= 12 and text)
    answered_by = {line.split()[0] for line in log.splitlines() if "POST /v2/zones" in line}
    assert len(answered_by) == 2, log  # both workers took writes, and still one budget


# --- JSON errors for every path and method ----------------------------------------------------

UNKNOWN = ["/nope", "/v2/nope", "/v2/nope/", "/v2/zones/x/nope", "/admin.php", "/static/nope.css"]


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True])
def test_any_method_on_an_unknown_path_is_a_json_404(settings, debug):
    from django.test import Client

    settings.DEBUG = debug
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)  # as a real client meets it
    for path in UNKNOWN:
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            response = client.generic(method, path, data="{}", content_type="application/json")
            assert response["Content-Type"] == "application/json", (method, path)
            assert_error(response.status_code, response.json(), 404, "not_found")
    # a path that only lacks its slash: before, a POST was APPEND_SLASH's RuntimeError (a 500) under DEBUG
    assert client.post("/admin", data="{}", content_type="application/json").status_code == 301
    assert client.get("/admin")["Location"] == "/admin/"


@pytest.mark.django_db
def test_a_crash_is_a_json_500_that_tells_nothing(client, monkeypatch):
    from zones.api import views

    def crash(*args, **kwargs):
        raise RuntimeError("internal detail: postgres://secret@db")

    monkeypatch.setattr(views.VersionView, "get", crash)
    client.raise_request_exception = False
    response = client.get("/v2")
    assert_error(response.status_code, response.json(), 500, "internal_server_error")
    assert "secret" not in response.content.decode()


@pytest.mark.django_db
def test_a_host_not_allowed_is_a_json_400(client):
    response = client.get("/v2/zones", HTTP_HOST="evil.example")
    assert_error(response.status_code, response.json(), 400, "bad_request")


# --- static files without DEBUG ---------------------------------------------------------------

@pytest.mark.django_db
def test_admin_and_docs_static_files_are_served_without_debug(settings, tmp_path):
    from django.test import Client

    settings.STATIC_ROOT, settings.WHITENOISE_AUTOREFRESH = tmp_path, False  # as in production
    call_command("collectstatic", interactive=False, verbosity=0)
    client = Client()  # its middleware (whitenoise) reads the files now there
    docs = client.get("/v2/docs").content.decode()
    assert "cdn." not in docs and "https://" not in docs  # Swagger UI comes from us, not a CDN
    assert client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js").status_code == 200
    assert client.get("/static/admin/css/base.css").status_code == 200


# --- no start without a secret key ------------------------------------------------------------

def check(extra_env, run_dir=None):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "dnsctl.settings", "DEBUG": "0", "SECRET_KEY": "",
           "SECRET_KEY_FILE": "", "RUN_DIR": str(run_dir or tempfile.mkdtemp()),
           **extra_env}  # empty, not unset: a .env in the worktree fills only what is unset
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


def test_without_a_secret_key_and_without_debug_dnsctl_does_not_start():
    result = check({})
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set. Set SECRET_KEY" in result.stderr
    assert "SECRET_KEY_FILE" in result.stderr


def test_a_secret_key_file_is_enough(tmp_path):
    key_file = tmp_path / "secret-key"
    key_file.write_text("k" * 50 + "\n")
    assert check({"SECRET_KEY_FILE": str(key_file)}).returncode == 0
    missing = check({"SECRET_KEY_FILE": str(tmp_path / "missing")})
    assert missing.returncode != 0 and "SECRET_KEY_FILE cannot be read" in missing.stderr


def test_the_key_bin_start_keeps_is_used_by_commands_in_the_same_checkout(tmp_path):
    assert check({}, run_dir=tmp_path).returncode != 0
    (tmp_path / "secret-key").write_text("k" * 50 + "\n")
    assert check({}, run_dir=tmp_path).returncode == 0


def test_debug_starts_without_a_secret_key():
    assert check({"DEBUG": "1"}).returncode == 0


def test_tls_settings_come_from_the_environment():
    script = ("from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
              "s.CSRF_TRUSTED_ORIGINS, s.SECURE_PROXY_SSL_HEADER, s.SECURE_HSTS_SECONDS)")

    def settings_with(**extra):
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "dnsctl.settings", "SECRET_KEY": "k" * 50, **extra}
        result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert settings_with() == "False False [] None 0"  # no proxy header is trusted unless asked
    assert settings_with(SESSION_COOKIE_SECURE="true", CSRF_COOKIE_SECURE="true", SECURE_HSTS_SECONDS="31536000",
                         CSRF_TRUSTED_ORIGINS="https://dns.example.com", SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto") \
        == "True True ['https://dns.example.com'] ('HTTP_X_FORWARDED_PROTO', 'https') 31536000"
