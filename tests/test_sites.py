"""Which hosts and origins a bridge accepts (pure: no server)."""

from __future__ import annotations

import pytest

from bridge.sites import Sites, hostname


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("127.0.0.1:4102", "127.0.0.1"),
        ("LocalHost", "localhost"),
        ("[::1]:80", "::1"),
        ("events.example.com", "events.example.com"),
        # Malformed: refused rather than guessed at.
        ("evil.example@127.0.0.1", None),
        ("127.0.0.1/evil", None),
        ("a b", None),
        ("127.0.0.1:http", None),
        ("", None),
        (None, None),
    ],
)
def test_hostname(host: str | None, name: str | None) -> None:
    assert hostname(host) == name


def test_names_need_configuring_but_addresses_and_localhost_do_not() -> None:
    sites = Sites(hosts=frozenset({"bridge"}), origins=frozenset({"https://app.example.com"}))
    served = ["10.0.0.5:4102", "localhost", "bridge:4102", "app.example.com"]
    assert [sites.host_refusal(h) for h in served] == [None] * 4
    refusal = sites.host_refusal("evil.example:4102")
    assert refusal == "host 'evil.example' is not served here: add it to --allowed-hosts"


def test_own_origin_and_configured_origins_are_allowed() -> None:
    sites = Sites(origins=frozenset({"https://app.example.com"}))
    assert sites.origin_allowed(None, "127.0.0.1:4102")  # a script: no Origin
    assert sites.origin_allowed("http://127.0.0.1:4102", "127.0.0.1:4102")
    assert sites.origin_allowed("https://app.example.com", "127.0.0.1:4102")
    assert not sites.origin_allowed("http://evil.example", "127.0.0.1:4102")
