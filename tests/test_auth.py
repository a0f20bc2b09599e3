"""Tokens, without sockets: what the Authenticator accepts, what it refuses and what it says."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import jwt
import pytest

from bridge.auth import Authenticator
from bridge.exceptions import Unauthorized
from bridge.router import Principal
from schemas.protocol import JWT_ALGORITHM, MIN_SECRET_LENGTH, MONITOR_SCOPE, token_claims

#: Long enough for HS512 too (64 bytes), so that forging one warns of nothing.
SECRET = "a-secret-for-these-tests-only-long-enough-for-hs256-and-for-hs512"
OTHER_SECRET = "another-secret-that-the-bridge-does-not-know-of-at-all-not-at-all"
MINUTE = timedelta(minutes=1)


def signed(claims: dict[str, object], secret: str = SECRET, algorithm: str = JWT_ALGORITHM) -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def claims(**changes: object) -> dict[str, object]:
    """Valid claims for ``u1`` for five minutes, with ``changes``; a ``None`` removes a claim."""
    base: dict[str, object] = {"sub": "u1", "roles": ["cliente"], "exp": int(time.time()) + 300}
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def unsigned(header: dict[str, object], payload: dict[str, object], signature: str = "") -> str:
    """A token put together by hand, as an attacker would: whatever header, any signature."""

    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(payload)}.{signature}"


def refusal(authenticator: Authenticator, token: str) -> str:
    """What the authenticator says when it refuses ``token``."""
    with pytest.raises(Unauthorized) as caught:
        authenticator.verify(token)
    return str(caught.value)


def test_the_test_secrets_are_ones_the_bridge_would_accept() -> None:
    assert min(len(SECRET), len(OTHER_SECRET)) >= MIN_SECRET_LENGTH


def test_a_token_it_issues_names_the_user_the_roles_and_the_expiry() -> None:
    auth = Authenticator(SECRET)
    before = time.time()
    principal = auth.verify(auth.issue("u1", ["proveedor", "cliente"], ttl=timedelta(minutes=5)))
    assert principal == Principal("u1", frozenset({"cliente", "proveedor"}), monitor=False)
    assert principal.expires is not None
    assert before + 299 <= principal.expires <= time.time() + 300


def test_a_monitor_token_says_monitor_and_a_plain_one_does_not() -> None:
    auth = Authenticator(SECRET)
    monitor = auth.issue("ops", [], ttl=MINUTE, monitor=True)
    plain = auth.issue("ops", [], ttl=MINUTE)
    assert jwt.decode(monitor, SECRET, algorithms=[JWT_ALGORITHM])["scope"] == MONITOR_SCOPE
    assert auth.verify(monitor).monitor
    assert not auth.verify(plain).monitor


def test_another_scope_is_not_a_monitor() -> None:
    assert not Authenticator(SECRET).verify(signed(claims(scope="admin"))).monitor


def test_a_token_without_roles_has_none() -> None:
    assert Authenticator(SECRET).verify(signed(claims(roles=None))).roles == frozenset()


@pytest.mark.parametrize(
    ("issuer", "audience"), [(None, None), ("shop", None), ("shop", "event-bridge")]
)
def test_a_token_signed_as_django_signs_it_verifies(
    issuer: str | None, audience: str | None
) -> None:
    # What producer.views.issue_token does, with the settings the bridge was given.
    django = token_claims(
        "42", ["cliente"], ttl=timedelta(seconds=300), issuer=issuer, audience=audience
    )
    token = jwt.encode(django, SECRET, algorithm=JWT_ALGORITHM)
    principal = Authenticator(SECRET, issuer=issuer, audience=audience).verify(token)
    assert principal == Principal("42", frozenset({"cliente"}))


def test_a_monitor_token_from_django_is_a_monitor() -> None:
    django = token_claims("staff", [], ttl=timedelta(seconds=60), monitor=True)
    assert Authenticator(SECRET).verify(jwt.encode(django, SECRET, algorithm=JWT_ALGORITHM)).monitor


def test_an_expired_token_is_refused_as_expired() -> None:
    expired = signed(claims(exp=int(time.time()) - 1))
    assert refusal(Authenticator(SECRET), expired) == "token expired"


def test_a_token_signed_with_another_secret_is_refused_for_its_signature() -> None:
    forged = Authenticator(OTHER_SECRET).issue("u1", ["admin"], ttl=MINUTE)
    assert refusal(Authenticator(SECRET), forged) == "token signature is not valid"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-token",
        "a.b.c",
        unsigned({"alg": JWT_ALGORITHM, "typ": "JWT"}, claims(), signature="!!"),
        signed(claims()).replace(".", "", 1),
    ],
    ids=["empty", "one part", "not base64 JSON", "bad signature encoding", "parts run together"],
)
def test_a_malformed_token_is_refused_as_not_valid(token: str) -> None:
    assert refusal(Authenticator(SECRET), token).startswith("token not valid: ")


@pytest.mark.parametrize("claim", ["sub", "exp"])
def test_a_token_missing_a_required_claim_is_refused_naming_it(claim: str) -> None:
    token = signed(claims(**{claim: None}))
    assert (
        refusal(Authenticator(SECRET), token)
        == f'token not valid: Token is missing the "{claim}" claim'
    )


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"sub": 42}, "Subject must be a string"),
        ({"exp": "tomorrow"}, "Expiration Time claim (exp) must be an integer"),
        ({"roles": "admin"}, "token claim 'roles' must be a list of strings"),
        ({"roles": ["admin", 1]}, "token claim 'roles' must be a list of strings"),
        ({"roles": {"admin": True}}, "token claim 'roles' must be a list of strings"),
    ],
    ids=["sub a number", "exp a word", "roles a string", "roles with a number", "roles a dict"],
)
def test_a_claim_of_the_wrong_type_is_refused_naming_it(
    changes: dict[str, object], says: str
) -> None:
    assert says in refusal(Authenticator(SECRET), signed(claims(**changes)))


def test_a_token_that_lives_longer_than_max_lifetime_is_refused() -> None:
    auth = Authenticator(SECRET, max_lifetime=timedelta(hours=1))
    assert auth.verify(auth.issue("u1", [], ttl=timedelta(minutes=59))).user == "u1"
    says = refusal(auth, auth.issue("u1", [], ttl=timedelta(hours=1, minutes=1)))
    assert says.startswith("token lives too long: its exp is more than 1 h ahead")
    assert "--max-token-lifetime" in says


def test_the_default_max_lifetime_is_a_day() -> None:
    auth, day = Authenticator(SECRET), timedelta(hours=24)
    assert auth.verify(auth.issue("u1", [], ttl=day - MINUTE)).user == "u1"
    says = refusal(auth, auth.issue("u1", [], ttl=day + MINUTE))
    assert "more than 24 h ahead" in says


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"iss": None}, 'Token is missing the "iss" claim'),
        ({"aud": None}, 'Token is missing the "aud" claim'),
        ({"iss": "elsewhere"}, "Invalid issuer"),
        ({"aud": "another-service"}, "Audience doesn't match"),
    ],
    ids=["no iss", "no aud", "another iss", "another aud"],
)
def test_iss_and_aud_must_match_when_the_authenticator_requires_them(
    changes: dict[str, object], says: str
) -> None:
    auth = Authenticator(SECRET, issuer="shop", audience="event-bridge")
    assert auth.verify(signed(claims(iss="shop", aud="event-bridge"))).user == "u1"
    token = signed(claims(**{"iss": "shop", "aud": "event-bridge", **changes}))
    assert refusal(auth, token) == f"token not valid: {says}"


def test_a_token_with_an_audience_to_a_bridge_that_checks_none_says_which_side_to_change() -> None:
    says = refusal(Authenticator(SECRET), signed(claims(aud="event-bridge")))
    assert "this bridge checks none: start it with --jwt-audience" in says
    assert "EVENT_BRIDGE['JWT_AUDIENCE']" in says


@pytest.mark.parametrize(
    "token",
    [
        unsigned({"alg": "none", "typ": "JWT"}, claims()),
        unsigned({"alg": "None", "typ": "JWT"}, claims()),
        signed(claims(), algorithm="HS512"),  # the right secret, another algorithm
        unsigned({"alg": "RS256", "typ": "JWT"}, claims(), signature="c2lnbmF0dXJl"),
    ],
    ids=["alg none", "alg None", "HS512", "RS256"],
)
def test_only_hs256_is_accepted(token: str) -> None:
    says = refusal(Authenticator(SECRET), token)
    assert says == "token not valid: The specified alg value is not allowed"


def test_a_refusal_never_repeats_the_token_or_the_secret() -> None:
    auth = Authenticator(SECRET, issuer="shop", audience="event-bridge")
    now = int(time.time())
    refused = [
        signed(claims(iss="shop", aud="event-bridge", exp=now - 10)),
        Authenticator(OTHER_SECRET, issuer="shop", audience="event-bridge").issue(
            "u1", [], ttl=MINUTE
        ),
        signed(claims(iss="shop", aud="event-bridge", roles=SECRET)),
        signed(claims(iss="shop", aud="event-bridge", sub=None)),
        signed(claims(iss=SECRET, aud="event-bridge")),
        signed(claims(iss="shop", aud=SECRET)),
        signed(claims(iss="shop", aud="event-bridge", exp=now + 10 * 24 * 3600)),
        signed(claims(iss="shop", aud="event-bridge"), algorithm="HS512"),
        unsigned({"alg": "none"}, claims(iss="shop", aud="event-bridge")),
        unsigned({"alg": JWT_ALGORITHM}, claims(iss="shop", aud="event-bridge"), signature=SECRET),
        f"{SECRET}.{SECRET}.{SECRET}",
    ]
    for token in refused:
        says = refusal(auth, token)
        assert SECRET not in says
        assert not [part for part in token.split(".") if len(part) > 8 and part in says], says


# Channels (issue 18)


def test_a_token_lists_the_channels_its_connection_may_subscribe_to() -> None:
    principal = Authenticator(SECRET).verify(signed(claims(channels=["order:42", "team:7:*"])))
    assert principal.allows("order:42")
    assert principal.allows("team:7:chat")
    assert not principal.allows("order:43")
    assert not principal.allows("team:8:chat")


@pytest.mark.parametrize(
    "channels",
    ["order:*", ["order:1", 2], [f"c{n}" for n in range(257)]],
    ids=["a string", "with a number", "more than 256"],
)
def test_a_channels_claim_that_is_not_a_short_list_of_names_is_refused(channels: object) -> None:
    said = refusal(Authenticator(SECRET), signed(claims(channels=channels)))
    assert "token claim 'channels' must be a list of at most 256" in said


def test_a_subscription_token_names_its_channel_and_user() -> None:
    auth = Authenticator(SECRET)
    token = auth.issue_subscription("order:42", "u1", ttl=MINUTE)
    assert auth.verify_subscription(token, "u1") == "order:42"
    with pytest.raises(Unauthorized, match="another user"):
        auth.verify_subscription(token, "u2")
    with pytest.raises(Unauthorized, match="another user"):
        auth.verify_subscription(token, None)
    assert "does not open a connection" in refusal(auth, token)


def test_a_subscription_token_for_anyone_fits_every_connection() -> None:
    auth = Authenticator(SECRET)
    token = auth.issue_subscription("match:7", None, ttl=MINUTE)
    assert auth.verify_subscription(token, None) == "match:7"
    assert auth.verify_subscription(token, "u1") == "match:7"


def test_a_subscription_token_must_name_a_channel_that_can_be_one() -> None:
    auth = Authenticator(SECRET)
    with pytest.raises(Unauthorized, match="'channel'"):
        auth.verify_subscription(signed({"channel": "no spaces", "exp": claims()["exp"]}), None)
    with pytest.raises(Unauthorized, match="channel"):
        auth.verify_subscription(signed({"exp": claims()["exp"]}), None)


def test_a_channel_pattern_no_channel_could_match_is_refused_where_tokens_are_made() -> None:
    with pytest.raises(ValueError, match="channel pattern 'order 42'"):
        Authenticator(SECRET).issue("u1", [], ttl=MINUTE, channels=["order 42"])
