"""API users: who acts for which project in which role, and the tokens they call the API with.

The one place that makes users and tokens, so the management commands, the demo, the tests and
the benchmarks all get them the same way.
"""
import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from knox.crypto import hash_token
from knox.models import get_digest_token

from .models import ApiToken, ProjectMembership
from .validation import OverQuota, fail

log = logging.getLogger(__name__)
Role = ProjectMembership.Role
LONGEST_TTL = 100 * 365 * 24 * 3600  # seconds: no token is made to live longer, whatever the settings
DESCRIPTION_MAX = ApiToken._meta.get_field("description").max_length


@transaction.atomic
def api_user(username: str, project_id: str, role: str = Role.MEMBER):
    """Create the user (no password: it calls the API with tokens) or update its project and role."""
    if role not in Role.values:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(Role.values)}")
    user, created = get_user_model().objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
        user.save()
    ProjectMembership.objects.update_or_create(user=user, defaults={"project_id": project_id, "role": role})
    return user


@transaction.atomic
def issue_token(user, description: str = "", expires_in: int | None = None) -> str:
    """A new token for the user; returns its key, which only this call ever sees (the database keeps
    its digest). It expires in `expires_in` s (None: API_TOKEN_TTL; 0: never). The user's expired
    tokens are dropped here, and a user already holding API_TOKEN_LIMIT_PER_USER live ones is refused."""
    if expires_in is None:
        expires_in = settings.API_TOKEN_TTL
    if not 0 <= expires_in <= LONGEST_TTL:
        fail("expires_in", f"Must be between 0 (never expires) and {LONGEST_TTL} seconds.")
    if len(description) > DESCRIPTION_MAX:
        fail("description", f"Must be at most {DESCRIPTION_MAX} characters.")
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()  # one at a time: the limit holds
    now = timezone.now()
    ApiToken.objects.filter(user=user, expiry__lte=now).delete()
    limit = settings.API_TOKEN_LIMIT_PER_USER
    if limit and ApiToken.objects.filter(user=user).count() >= limit:
        raise OverQuota("tokens", limit)
    digest, key = get_digest_token()
    ApiToken.objects.create(user=user, digest=digest, description=description,
                            expiry=now + timedelta(seconds=expires_in) if expires_in else None)
    return key


def live_tokens():
    """Tokens that have not expired."""
    return ApiToken.objects.exclude(expiry__lte=timezone.now())


def find_token(key: str) -> ApiToken | None:
    """The token whose key this is, expired or not, with its user and membership: one lookup by digest."""
    return ApiToken.objects.select_related("user__membership").filter(digest=hash_token(key)).first()


def authenticating_token(key: str) -> ApiToken | None:
    """find_token() for a call's authentication, kept in the shared cache for API_TOKEN_CACHE_SECONDS
    so a client's calls do not each query it. Revoking the token, or changing or removing its user
    or membership, drops the entry (forget_tokens); the caller checks expiry and is_active on every
    call, on the cached copy too."""
    seconds = settings.API_TOKEN_CACHE_SECONDS
    if not seconds:
        return find_token(key)
    cache_key = _cache_key(hash_token(key))
    try:
        token = cache.get(cache_key)
    except Exception as exc:  # noqa: BLE001 - the cache is an optimisation: ask the database
        log.warning("token cache unreachable, reading the database: %s", exc)
        return find_token(key)
    if token is None:
        token = find_token(key)
        if token is not None:
            try:
                cache.set(cache_key, token, seconds)
            except Exception as exc:  # noqa: BLE001
                log.warning("token cache unreachable: %s", exc)
    return token


def _cache_key(digest: str) -> str:
    return f"dnsctl:apitoken:{digest}"


def forget_tokens(digests) -> None:
    """Drop these tokens from the cache: the next call with their keys reads the database."""
    keys = [_cache_key(d) for d in digests]
    if keys and settings.API_TOKEN_CACHE_SECONDS:
        try:
            cache.delete_many(keys)
        except Exception as exc:  # noqa: BLE001 - then it lives on for at most API_TOKEN_CACHE_SECONDS
            log.error("token cache unreachable, %d revoked or changed tokens stay cached for up to %s s: %s",
                      len(keys), settings.API_TOKEN_CACHE_SECONDS, exc)


# Cache invalidation, not business logic: every way a token, user or membership goes away or
# changes (the API, the admin, commands, cascades) passes through these model signals.
@receiver(post_delete, sender=ApiToken)
def _token_deleted(sender, instance, **kwargs):
    forget_tokens([instance.digest])


@receiver(post_save, sender=ApiToken)
def _token_saved(sender, instance, created, **kwargs):
    if not created:
        forget_tokens([instance.digest])


@receiver(post_save, sender=ProjectMembership)
@receiver(post_delete, sender=ProjectMembership)
def _membership_changed(sender, instance, **kwargs):
    forget_tokens(ApiToken.objects.filter(user_id=instance.user_id).values_list("digest", flat=True))


def _user_changed(sender, instance, **kwargs):
    forget_tokens(ApiToken.objects.filter(user_id=instance.pk).values_list("digest", flat=True))


post_save.connect(_user_changed, sender=settings.AUTH_USER_MODEL)
post_delete.connect(_user_changed, sender=settings.AUTH_USER_MODEL)
