"""The token cache: a client's calls do not each query its token, and every revocation or change of
the token's user or membership is seen by the very next call."""
import pytest
from django.core.cache import cache
from pytest_django.asserts import assertNumQueries
from rest_framework.test import APIClient, APIRequestFactory

from zones import accounts
from zones.api.auth import XAuthTokenAuthentication

pytestmark = pytest.mark.django_db


def authenticate(key):
    request = APIRequestFactory().get("/v2/zones", HTTP_X_AUTH_TOKEN=key)
    return XAuthTokenAuthentication().authenticate(request)


def status(key) -> int:
    return APIClient(HTTP_X_AUTH_TOKEN=key).get("/v2/zones").status_code


@pytest.fixture
def key():
    return accounts.issue_token(accounts.api_user("cached", "p-cache"))


def test_second_call_reads_the_cache(key):
    with assertNumQueries(1):
        authenticate(key)
    with assertNumQueries(0):
        user, token = authenticate(key)
    assert (user.username, user.membership.project_id, user.membership.role) == ("cached", "p-cache", "member")
    assert not hasattr(token, "key")  # the cache holds the row (its digest), never the key


def test_revoking_through_the_api_is_seen_at_once(key):
    admin = APIClient(HTTP_X_AUTH_TOKEN=key)
    assert status(key) == 200
    other = accounts.issue_token(accounts.api_user("cached", "p-cache"))
    assert status(other) == 200
    token_id = accounts.find_token(other).id
    assert admin.delete(f"/v2/tokens/{token_id}").status_code == 204
    assert status(other) == 401
    assert status(key) == 200


def test_deleting_the_row_is_seen_at_once(key):
    assert status(key) == 200
    accounts.find_token(key).delete()  # the admin's delete, a command's
    assert status(key) == 401


def test_deactivating_or_removing_the_user_is_seen_at_once(key):
    assert status(key) == 200
    user = accounts.find_token(key).user
    user.is_active = False
    user.save()
    assert status(key) == 401
    user.is_active = True
    user.save()
    assert status(key) == 200
    user.delete()
    assert status(key) == 401


def test_a_role_or_project_change_is_seen_at_once(key):
    assert authenticate(key)[0].membership.role == "member"
    accounts.api_user("cached", "p-other", role="admin")
    user, _ = authenticate(key)
    assert (user.membership.project_id, user.membership.role) == ("p-other", "admin")


def test_an_unreachable_cache_falls_back_to_the_database(key, monkeypatch, caplog):
    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "get", down)
    monkeypatch.setattr(cache, "set", down)
    with assertNumQueries(1):
        assert authenticate(key)[0].username == "cached"
    assert "token cache unreachable" in caplog.text


def test_zero_seconds_turns_it_off(key, settings):
    settings.API_TOKEN_CACHE_SECONDS = 0
    authenticate(key)
    with assertNumQueries(1):
        authenticate(key)
