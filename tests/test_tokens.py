"""API tokens: stored as digests only, the key shown once, expiry, list/get/revoke through the API by
their owner (and admins), the admin page, the demo's token file, and the migration of old clear keys."""
import datetime
import os
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from django.utils import timezone
from knox.crypto import hash_token
from knox.settings import CONSTANTS
from rest_framework.test import APIClient, APIRequestFactory

from zones import accounts
from zones.api.auth import XAuthTokenAuthentication
from zones.models import ApiToken

pytestmark = pytest.mark.django_db

TOKEN_KEYS = {"id", "description", "user", "project_id", "created_at", "expires_at", "links"}


def client_for(key, **headers) -> APIClient:
    return APIClient(HTTP_X_AUTH_TOKEN=key, **headers)


@pytest.fixture
def alice():
    return client_for(accounts.issue_token(accounts.api_user("alice", "p1")))


@pytest.fixture
def bob():
    """A second member of alice's own project."""
    return client_for(accounts.issue_token(accounts.api_user("bob", "p1")))


@pytest.fixture
def admin():
    return client_for(accounts.issue_token(accounts.api_user("root", "ops", role="admin")))


def new_token(client, **body) -> dict:
    response = client.post("/v2/tokens", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def works(key) -> bool:
    status = client_for(key).get("/v2/zones").status_code
    assert status in (200, 401)
    return status == 200


def assert_secret_free(text: str, key: str):
    """Neither the key, nor knox's key prefix, nor the digest."""
    for secret in (key, key[:CONSTANTS.TOKEN_KEY_LENGTH], hash_token(key)):
        assert secret not in text


def test_the_stored_row_holds_no_key(alice):
    made = new_token(alice, description="ci")
    key = made["key"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM zones_apitoken WHERE id = %s", [made["id"]])
        row = cursor.fetchone()
        columns = [column.name for column in cursor.description]
    assert row is not None and "digest" in columns
    for column, value in zip(columns, row):
        for secret in (key, key[:CONSTANTS.TOKEN_KEY_LENGTH], key[-CONSTANTS.TOKEN_KEY_LENGTH:]):
            assert secret not in str(value), column
    assert dict(zip(columns, row))["digest"] == hash_token(key)  # a one-way digest stands for it
    assert len(key) == 64 and works(key)


def test_the_key_is_shown_once_and_never_again(alice):
    made = new_token(alice, description="deploy bot", expires_in=3600)
    key = made.pop("key")
    assert set(made) == TOKEN_KEYS
    assert (made["description"], made["user"], made["project_id"]) == ("deploy bot", "alice", "p1")
    expires = datetime.datetime.fromisoformat(made["expires_at"])
    assert abs((expires - timezone.now()).total_seconds() - 3600) < 60
    assert made["links"]["self"].endswith(f"/v2/tokens/{made['id']}")

    listed = alice.get("/v2/tokens")
    got = alice.get(f"/v2/tokens/{made['id']}")
    assert listed.status_code == got.status_code == 200
    assert got.json() == made
    assert made in listed.json()["tokens"]
    assert all(set(token) == TOKEN_KEYS for token in listed.json()["tokens"])
    for response in (listed, got):
        assert_secret_free(response.content.decode(), key)
    assert works(key)
    assert APIClient(HTTP_AUTHORIZATION=f"Token {key}").get("/v2/zones").status_code == 200


def test_tokens_expire_by_default_after_the_configured_lifetime(alice, settings):
    settings.API_TOKEN_TTL = 600
    made = new_token(alice)
    assert made["description"] == ""
    expires = datetime.datetime.fromisoformat(made["expires_at"])
    assert abs((expires - timezone.now()).total_seconds() - 600) < 60
    settings.API_TOKEN_TTL = 0
    assert new_token(alice)["expires_at"] is None


def test_an_expired_token_is_401_and_gone_from_the_list(alice):
    made = new_token(alice)
    ApiToken.objects.filter(id=made["id"]).update(expiry=timezone.now() - datetime.timedelta(seconds=1))
    response = client_for(made["key"]).get("/v2/zones")
    assert response.status_code == 401
    assert response.json() == {"code": 401, "type": "authentication_failed", "message": "The token has expired."}
    assert made["id"] not in [t["id"] for t in alice.get("/v2/tokens").json()["tokens"]]
    assert alice.get(f"/v2/tokens/{made['id']}").status_code == 404
    new_token(alice)  # making a token drops its owner's expired ones
    assert not ApiToken.objects.filter(id=made["id"]).exists()


def test_a_revoked_token_is_401(alice):
    made = new_token(alice)
    assert alice.delete(f"/v2/tokens/{made['id']}").status_code == 204
    response = client_for(made["key"]).get("/v2/zones")
    assert response.status_code == 401
    assert response.json() == {"code": 401, "type": "authentication_failed", "message": "Invalid token."}
    assert alice.get(f"/v2/tokens/{made['id']}").status_code == 404
    assert alice.delete(f"/v2/tokens/{made['id']}").status_code == 404


def test_a_token_revokes_itself(alice):
    made = new_token(alice)
    itself = client_for(made["key"])
    assert itself.delete(f"/v2/tokens/{made['id']}").status_code == 204
    assert itself.get("/v2/tokens").status_code == 401


def test_an_owner_lists_gets_and_revokes_its_tokens(alice):
    first, second = new_token(alice, description="one"), new_token(alice, description="two")
    listed = alice.get("/v2/tokens").json()
    assert listed["metadata"]["total_count"] == 3  # with the one alice calls with
    assert [t["description"] for t in listed["tokens"]] == ["", "one", "two"]  # oldest first
    page = alice.get("/v2/tokens?limit=1").json()
    assert len(page["tokens"]) == 1 and "next" in page["links"]
    rest = alice.get(page["links"]["next"].replace("http://testserver", "").replace("limit=1", "limit=5")).json()
    assert [t["id"] for t in rest["tokens"]] == [first["id"], second["id"]]
    assert alice.get(f"/v2/tokens/{first['id']}").json()["description"] == "one"
    assert alice.delete(f"/v2/tokens/{first['id']}").status_code == 204
    assert [t["id"] for t in alice.get("/v2/tokens").json()["tokens"]][1:] == [second["id"]]
    assert not works(first["key"]) and works(second["key"])


def test_readers_manage_their_own_tokens():
    reader = client_for(accounts.issue_token(accounts.api_user("auditor", "p1", role="reader")))
    made = new_token(reader, description="audit job")
    assert works(made["key"])
    assert reader.delete(f"/v2/tokens/{made['id']}").status_code == 204
    assert not works(made["key"])


def test_another_member_can_neither_see_nor_revoke_them(alice, bob):
    made = new_token(alice, description="alice's")
    before = list(ApiToken.objects.values_list("id", "description", "expiry").order_by("id"))
    assert made["id"] not in [t["id"] for t in bob.get("/v2/tokens").json()["tokens"]]
    for response in (bob.get(f"/v2/tokens/{made['id']}"), bob.delete(f"/v2/tokens/{made['id']}")):
        assert response.status_code == 404
        assert response.json() == {"code": 404, "type": "token_not_found", "message": "Could not find token."}
    for header in ({"HTTP_X_AUTH_ALL_PROJECTS": "true"}, {"HTTP_X_AUTH_SUDO_PROJECT_ID": "p1"}):
        assert bob.get("/v2/tokens", **header).status_code == 403
        assert bob.delete(f"/v2/tokens/{made['id']}", **header).status_code == 403
        assert bob.post("/v2/tokens", {}, format="json", **header).status_code == 403
    assert list(ApiToken.objects.values_list("id", "description", "expiry").order_by("id")) == before
    assert works(made["key"])


def test_an_admin_sees_and_revokes_everyones_with_all_projects(alice, bob, admin):
    made = new_token(alice, description="alice's")
    assert {t["user"] for t in admin.get("/v2/tokens").json()["tokens"]} == {"root"}
    assert admin.get(f"/v2/tokens/{made['id']}").status_code == 404
    every = admin.get("/v2/tokens", HTTP_X_AUTH_ALL_PROJECTS="True").json()["tokens"]
    assert {(t["user"], t["project_id"]) for t in every} == {("alice", "p1"), ("bob", "p1"), ("root", "ops")}
    assert len(every) == 4
    assert_secret_free(str(every), made["key"])
    p1 = admin.get("/v2/tokens", HTTP_X_AUTH_SUDO_PROJECT_ID="p1").json()["tokens"]
    assert {t["user"] for t in p1} == {"alice", "bob"}
    got = admin.get(f"/v2/tokens/{made['id']}", HTTP_X_AUTH_ALL_PROJECTS="true")
    assert got.status_code == 200 and got.json()["user"] == "alice"
    assert admin.delete(f"/v2/tokens/{made['id']}", HTTP_X_AUTH_ALL_PROJECTS="true").status_code == 204
    assert not works(made["key"])


@pytest.mark.parametrize(("body", "field"), [
    ({"description": "ok", "colour": "blue"}, "colour"),
    ({"key": "0" * 64}, "key"),  # nobody chooses a key
    ({"id": "8f4e…"}, "id"),
    ({"description": 5}, "description"),
    ({"description": ["x"]}, "description"),
    ({"description": "x" * 256}, "description"),
    ({"description": "nul\x00byte"}, "description"),
    ({"expires_in": "3600"}, "expires_in"),
    ({"expires_in": 3600.5}, "expires_in"),
    ({"expires_in": True}, "expires_in"),
    ({"expires_in": 0}, "expires_in"),  # never expiring only without a maximum
    ({"expires_in": -1}, "expires_in"),
    ({"expires_in": 365 * 24 * 3600 + 1}, "expires_in"),
    ({"expires_in": 10 ** 30}, "expires_in"),
])
def test_bad_input_is_a_400_naming_the_field_and_makes_nothing(alice, body, field):
    before = ApiToken.objects.count()
    response = alice.post("/v2/tokens", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["type"] == "invalid_object"
    assert list(response.json()["errors"]) == [field]
    assert ApiToken.objects.count() == before


def test_bodies_that_are_not_an_object_are_400(alice):
    before = ApiToken.objects.count()
    for body, content_type in (("[]", "application/json"), ("{", "application/json"), ('"x"', "application/json")):
        response = alice.generic("POST", "/v2/tokens", body, content_type=content_type)
        assert response.status_code == 400, body
    assert ApiToken.objects.count() == before


def test_without_a_maximum_a_token_may_never_expire_but_stays_bounded(alice, settings):
    settings.API_TOKEN_MAX_TTL = 0
    assert new_token(alice, expires_in=0)["expires_at"] is None
    response = alice.post("/v2/tokens", {"expires_in": accounts.LONGEST_TTL + 1}, format="json")
    assert response.status_code == 400 and list(response.json()["errors"]) == ["expires_in"]
    settings.API_TOKEN_MAX_TTL = 3600
    assert alice.post("/v2/tokens", {"expires_in": 3601}, format="json").status_code == 400
    assert new_token(alice, expires_in=3600)["expires_at"] is not None


def test_a_user_holds_a_limited_number_of_live_tokens(alice, settings):
    settings.API_TOKEN_LIMIT_PER_USER = 3
    made = new_token(alice), new_token(alice)
    response = alice.post("/v2/tokens", {}, format="json")
    assert response.status_code == 413
    assert response.json()["type"] == "over_quota" and list(response.json()["errors"]) == ["tokens"]
    assert ApiToken.objects.filter(user__username="alice").count() == 3
    ApiToken.objects.filter(id=made[0]["id"]).update(expiry=timezone.now())  # an expired one makes room
    new_token(alice)
    assert ApiToken.objects.filter(user__username="alice").count() == 3


def test_authentication_is_one_lookup_and_bad_headers_are_401(alice, django_assert_num_queries):
    key = accounts.issue_token(accounts.api_user("carol", "p3"))
    request = APIRequestFactory().get("/v2/zones", HTTP_X_AUTH_TOKEN=key)
    with django_assert_num_queries(1):
        user, token = XAuthTokenAuthentication().authenticate(request)
        assert (user.username, user.membership.project_id, token.user_id) == ("carol", "p3", user.id)
    for headers in ({"HTTP_AUTHORIZATION": f"Token {key} extra"}, {"HTTP_AUTHORIZATION": "Token"},
                    {"HTTP_AUTHORIZATION": f"Token {key[:-1]}"}, {"HTTP_X_AUTH_TOKEN": key.upper()},
                    {"HTTP_AUTHORIZATION": f"Bearer {key}"}, {}):
        response = APIClient(**headers).get("/v2/tokens")
        assert response.status_code == 401, headers
        assert response.json()["code"] == 401
    user.is_active = False
    user.save()
    assert not works(key)


def test_the_admin_lists_and_revokes_tokens_without_showing_a_key(client, alice):
    client.force_login(get_user_model().objects.create_superuser("staff", "staff@example.com", "pw"))
    made = new_token(alice, description="ci pipeline")
    pages = [client.get(reverse("admin:zones_apitoken_changelist")),
             client.get(reverse("admin:zones_apitoken_change", args=[made["id"]])),
             client.get(reverse("admin:zones_apitoken_delete", args=[made["id"]]))]
    for page in pages:
        html = page.content.decode()
        assert page.status_code == 200 and "alice" in html
        assert_secret_free(html, made["key"])
    assert "ci pipeline" in pages[0].content.decode() and "ci pipeline" in pages[1].content.decode()
    assert client.get(reverse("admin:zones_apitoken_add")).status_code == 403
    response = client.post(reverse("admin:zones_apitoken_delete", args=[made["id"]]), {"post": "yes"})
    assert response.status_code == 302
    assert not works(made["key"])


def test_create_api_user_refuses_bad_token_options():
    for args in (["--expires-in", "-1"], ["--description", "x" * 256]):
        with pytest.raises(CommandError, match="^(expires_in|description): "):
            call_command("create_api_user", "erin", "--project", "p1", *args, stdout=StringIO(), stderr=StringIO())
    assert not get_user_model().objects.filter(username="erin").exists()


def test_the_demo_keeps_its_token_in_a_private_file(tmp_path, capsys):
    def bootstrap() -> str:
        call_command("bootstrap_demo", "--run-dir", str(tmp_path))
        return capsys.readouterr().out

    printed = bootstrap()
    token_file = tmp_path / "api-token"
    key = token_file.read_text().strip()
    assert oct(os.stat(token_file).st_mode & 0o777) == "0o600"
    assert key in printed and works(key)
    assert key in bootstrap() and token_file.read_text().strip() == key  # the same key again
    assert ApiToken.objects.filter(user__username="admin").count() == 1
    ApiToken.objects.filter(user__username="admin").delete()  # revoked: the next run makes a new one
    printed = bootstrap()
    new_key = token_file.read_text().strip()
    assert new_key != key and new_key in printed and works(new_key)


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_old_clear_keys_working_and_removes_them():
    """Back to the migration before ApiToken, an old rest_framework.authtoken row (its table made as
    DRF made it: the app is no longer installed), then forward again."""
    user = accounts.api_user("legacy", "p1")
    old_key = "0123456789abcdef0123456789abcdef01234567"  # DRF's: 40 hex characters, stored in clear
    executor = MigrationExecutor(connection)
    tokens_migration = next(key for key in executor.loader.disk_migrations
                            if key[0] == "zones" and key[1].endswith("_api_tokens"))
    before = [node.key for node in executor.loader.graph.node_map[tokens_migration].parents if node.key[0] == "zones"]
    executor.migrate(before)
    with connection.cursor() as cursor:
        cursor.execute('CREATE TABLE authtoken_token ("key" varchar(40) PRIMARY KEY, created timestamptz NOT NULL, '
                       'user_id integer NOT NULL UNIQUE REFERENCES auth_user (id))')
        cursor.execute("INSERT INTO authtoken_token VALUES (%s, %s, %s)",
                       [old_key, datetime.datetime(2020, 1, 2, tzinfo=datetime.UTC), user.id])
    try:
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM authtoken_token")
            assert cursor.fetchone()[0] == 0
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE authtoken_token")
    token = ApiToken.objects.get(user=user)
    assert token.digest == hash_token(old_key) and token.created.year == 2020
    assert token.expiry is not None and token.expiry > timezone.now()
    assert works(old_key)
