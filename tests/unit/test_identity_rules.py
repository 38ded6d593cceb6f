"""Identity's rules on SQLite, without a broker."""

import datetime as dt

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from services.common import clock
from services.identity import accounts, keys, passwords, throttle
from services.identity.exceptions import (
    EmailNotVerified,
    EmailTaken,
    InvalidCredentials,
    InvalidRefreshToken,
    InvalidToken,
    SessionRevoked,
    TooManyAttempts,
    WeakPassword,
)
from services.identity.models import Base, LoginSession, OutboxEvent
from services.identity.settings import IdentitySettings

SETTINGS = IdentitySettings(public_url="http://portal.test", issuer="http://portal.test")
PASSWORD = "une phrase de passe"


@pytest.fixture
def session():
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        yield s


def events(session, event_type):
    return [e.payload for e in session.scalars(select(OutboxEvent)).all() if e.event_type == event_type]


def registered(session, email="Parent@Example.org", verify=True):
    account = accounts.register(session, SETTINGS, email, PASSWORD, "fr")
    if verify:
        token = events(session, "email_verification_requested")[-1]["token"]
        accounts.verify_email(session, token)
    return account


@pytest.mark.parametrize(
    "password, reason",
    [
        ("short", "too_short"),
        ("x" * 129, "too_long"),
        ("azertyuiop", "common"),
        ("1234567890", "common"),
        ("aaaaaaaaaaaa", "common"),
        ("parent@example.org", "is_email"),
    ],
)
def test_password_policy_refuses(password, reason):
    with pytest.raises(WeakPassword) as refused:
        passwords.check_policy(password, "parent@example.org")
    assert refused.value.details["reason"] == reason


def test_password_policy_accepts_long_phrases_without_composition_rules():
    assert passwords.check_policy("tout en minuscules sans chiffre") == "tout en minuscules sans chiffre"
    assert passwords.check_policy(("abcdefgh" * 16)[:128])


def test_argon2id_hash_round_trip():
    hashed = passwords.hash_password(PASSWORD)
    assert hashed.startswith("$argon2id$")
    assert passwords.verify_password(hashed, PASSWORD)
    assert not passwords.verify_password(hashed, PASSWORD + "!")
    assert not passwords.verify_password("garbage", PASSWORD)


def test_throttle_delay_grows_and_is_capped():
    policy = throttle.ACCOUNT_POLICY
    delays = [policy.delay_after(n) for n in range(1, 16)]
    assert delays[:4] == [0, 0, 0, 0]
    assert delays[4:7] == [2, 4, 8]
    assert max(delays) <= policy.max_delay
    assert delays == sorted(delays)


def test_register_normalizes_email_and_refuses_duplicates(session):
    account = registered(session, verify=False)
    assert account.email_normalized == "parent@example.org"
    with pytest.raises(EmailTaken):
        accounts.register(session, SETTINGS, " PARENT@example.ORG ", PASSWORD, None)
    sent = events(session, "email_verification_requested")[0]
    assert sent["link"].startswith("http://portal.test/account/verify-email?token=")
    assert sent["token"] not in str(session.scalars(select(accounts.EmailToken.token_hash)).all())


def test_verification_token_single_use_and_expires_after_48h(session):
    accounts.register(session, SETTINGS, "a@example.org", PASSWORD, "fr")
    token = events(session, "email_verification_requested")[-1]["token"]
    accounts.verify_email(session, token)
    with pytest.raises(InvalidToken):
        accounts.verify_email(session, token)

    accounts.register(session, SETTINGS, "b@example.org", PASSWORD, "fr")
    late = events(session, "email_verification_requested")[-1]["token"]
    clock.advance(dt.timedelta(hours=48, seconds=1))
    with pytest.raises(InvalidToken):
        accounts.verify_email(session, late)


def test_login_refused_until_verified_then_tokens_verify(session):
    registered(session, verify=False)
    assert isinstance(
        accounts.login(session, SETTINGS, "parent@example.org", PASSWORD, None), EmailNotVerified
    )
    token = events(session, "email_verification_requested")[-1]["token"]
    accounts.verify_email(session, token)
    pair = accounts.login(session, SETTINGS, "parent@example.org", PASSWORD, "192.0.2.1")
    jwks = keys.public_jwks(session, dt.timedelta(days=1))
    claims = keys.verify(pair.access_token, jwks, SETTINGS.issuer, SETTINGS.audience)
    assert claims["sid"] == pair.session_id
    with pytest.raises(keys.TokenInvalid):
        keys.verify(pair.access_token, jwks, "http://evil.test", SETTINGS.audience)
    clock.advance(SETTINGS.access_ttl + dt.timedelta(minutes=1))
    with pytest.raises(keys.TokenInvalid):
        keys.verify(pair.access_token, jwks, SETTINGS.issuer, SETTINGS.audience)


def test_refresh_rotation_and_reuse_revokes_chain(session):
    registered(session)
    first = accounts.login(session, SETTINGS, "parent@example.org", PASSWORD, None)
    second = accounts.refresh(session, SETTINGS, first.refresh_token)
    assert second.refresh_token != first.refresh_token and second.session_id == first.session_id
    assert isinstance(accounts.refresh(session, SETTINGS, first.refresh_token), InvalidRefreshToken)
    assert isinstance(accounts.refresh(session, SETTINGS, second.refresh_token), InvalidRefreshToken)
    assert session.get(LoginSession, first.session_id).revoked_reason == "refresh_reuse"


def test_throttle_counts_unknown_accounts_the_same_and_owner_gets_back_in(session):
    registered(session)
    outcomes = [
        accounts.login(session, SETTINGS, "parent@example.org", "wrong password", "192.0.2.9")
        for _ in range(6)
    ]
    ghosts = [
        accounts.login(session, SETTINGS, "ghost@example.org", "wrong password", "192.0.2.10")
        for _ in range(6)
    ]
    kinds = [type(o).__name__ for o in outcomes]
    assert kinds == [type(o).__name__ for o in ghosts]
    assert kinds[:5] == ["InvalidCredentials"] * 5 and kinds[5] == "TooManyAttempts"
    assert isinstance(
        accounts.login(session, SETTINGS, "parent@example.org", PASSWORD, None), TooManyAttempts
    )
    clock.advance(dt.timedelta(seconds=3))
    assert isinstance(
        accounts.login(session, SETTINGS, "parent@example.org", PASSWORD, None), accounts.TokenPair
    )


def test_address_throttle_spans_accounts(session):
    outcomes = [
        accounts.login(session, SETTINGS, f"user{i}@example.org", "wrong", "192.0.2.77") for i in range(21)
    ]
    assert all(isinstance(o, InvalidCredentials) for o in outcomes[:20])  # 20 free failures per address
    assert isinstance(outcomes[20], TooManyAttempts)
    assert isinstance(
        accounts.login(session, SETTINGS, "other@example.org", "x", "192.0.2.77"), TooManyAttempts
    )
    assert isinstance(
        accounts.login(session, SETTINGS, "other@example.org", "x", "192.0.2.78"), InvalidCredentials
    )


def test_reset_is_silent_for_unknown_and_revokes_sessions(session):
    accounts.request_password_reset(session, SETTINGS, "nobody@example.org")
    assert events(session, "password_reset_requested") == []
    registered(session)
    pair = accounts.login(session, SETTINGS, "parent@example.org", PASSWORD, None)
    accounts.request_password_reset(session, SETTINGS, "parent@example.org")
    token = events(session, "password_reset_requested")[-1]["token"]
    with pytest.raises(WeakPassword):
        accounts.reset_password(session, SETTINGS, token, "court")
    accounts.reset_password(
        session, SETTINGS, token, "une nouvelle phrase"
    )  # the refused try did not spend it
    with pytest.raises(InvalidToken):
        accounts.reset_password(session, SETTINGS, token, "une autre phrase encore")
    with pytest.raises(SessionRevoked):
        accounts.active_session(session, pair.session_id, pair_account_id(session))
    assert isinstance(
        accounts.login(session, SETTINGS, "parent@example.org", PASSWORD, None), InvalidCredentials
    )
    assert events(session, "password_changed")


def pair_account_id(session):
    return accounts.account_by_email(session, "parent@example.org").id


def test_reset_token_expires(session):
    registered(session)
    accounts.request_password_reset(session, SETTINGS, "parent@example.org")
    token = events(session, "password_reset_requested")[-1]["token"]
    clock.advance(SETTINGS.reset_ttl + dt.timedelta(seconds=1))
    with pytest.raises(InvalidToken):
        accounts.reset_password(session, SETTINGS, token, "une nouvelle phrase")


def test_reset_requests_are_capped_per_account(session):
    registered(session)
    for _ in range(5):
        accounts.request_password_reset(session, SETTINGS, "parent@example.org")
    assert len(events(session, "password_reset_requested")) == accounts.MAX_PENDING_RESETS


def test_roles_and_admin_creation(session):
    admin, created = accounts.create_admin(session, "boss@example.org", "une phrase de patron")
    assert created and admin.email_verified_at is not None
    again, created_again = accounts.create_admin(session, "BOSS@example.org", "ignored password here")
    assert again.id == admin.id and not created_again
    assert accounts.grant_role(session, admin.id, "agent", "commune-1", None)
    assert not accounts.grant_role(session, admin.id, "agent", "commune-1", None)
    assert accounts.role_claims(session, admin.id) == ["admin", "agent:commune-1"]
    described = accounts.describe(session, admin)
    assert described["roles"] == ["admin", "agent"] and described["agent_communes"] == ["commune-1"]
    with pytest.raises(ValueError):
        accounts.grant_role(session, admin.id, "agent", "", None)
    with pytest.raises(ValueError):
        accounts.grant_role(session, admin.id, "superuser", "", None)


def test_wrong_password_for_existing_unverified_account_is_invalid_credentials(session):
    registered(session, verify=False)
    assert isinstance(
        accounts.login(session, SETTINGS, "parent@example.org", "nope nope nope", None), InvalidCredentials
    )


# --- revocations announced to the gateways -----------------------------------------------------


def revocations(session):
    return events(session, "session_revoked")


def test_logout_records_one_session_revoked_event(session):
    clock.set_now(dt.datetime(2030, 1, 1, 8, 0, tzinfo=dt.UTC))
    registered(session)
    pair = accounts.login(session, SETTINGS, "parent@example.org", PASSWORD, None)
    other = accounts.login(session, SETTINGS, "parent@example.org", PASSWORD, None)
    assert revocations(session) == []
    accounts.revoke_session(session, SETTINGS, pair.session_id, "logout")
    accounts.revoke_session(session, SETTINGS, pair.session_id, "logout")  # already revoked: no new event
    (event,) = revocations(session)
    assert event["session_id"] == pair.session_id and event["account_id"] == pair_account_id(session)
    assert dt.datetime.fromisoformat(event["until"]) == clock.now() + SETTINGS.access_ttl
    assert event["event_id"]
    accounts.active_session(session, other.session_id, pair_account_id(session))  # untouched


def test_refresh_reuse_records_session_revoked(session):
    registered(session)
    pair = accounts.login(session, SETTINGS, "parent@example.org", PASSWORD, None)
    assert isinstance(accounts.refresh(session, SETTINGS, pair.refresh_token), accounts.TokenPair)
    assert revocations(session) == []
    assert isinstance(accounts.refresh(session, SETTINGS, pair.refresh_token), InvalidRefreshToken)
    assert [e["session_id"] for e in revocations(session)] == [pair.session_id]


def test_reset_records_one_event_per_active_session(session):
    registered(session)
    first = accounts.login(session, SETTINGS, "parent@example.org", PASSWORD, None)
    second = accounts.login(session, SETTINGS, "parent@example.org", PASSWORD, None)
    third = accounts.login(session, SETTINGS, "parent@example.org", PASSWORD, None)
    accounts.revoke_session(session, SETTINGS, third.session_id, "logout")  # announced once, already
    registered(session, email="other@example.org")
    bystander = accounts.login(session, SETTINGS, "other@example.org", PASSWORD, None)
    accounts.request_password_reset(session, SETTINGS, "parent@example.org")
    token = events(session, "password_reset_requested")[-1]["token"]
    accounts.reset_password(session, SETTINGS, token, "une nouvelle phrase")
    announced = [e["session_id"] for e in revocations(session)]
    assert announced[0] == third.session_id
    assert sorted(announced[1:]) == sorted([first.session_id, second.session_id])
    assert bystander.session_id not in announced
    assert {e["account_id"] for e in revocations(session)} == {pair_account_id(session)}


def test_recent_revocations_cover_one_access_token_lifetime(session):
    clock.set_now(dt.datetime(2030, 1, 1, 8, 0, tzinfo=dt.UTC))
    registered(session)
    old = accounts.login(session, SETTINGS, "parent@example.org", PASSWORD, None)
    accounts.revoke_session(session, SETTINGS, old.session_id, "logout")
    clock.advance(SETTINGS.access_ttl - dt.timedelta(seconds=1))
    recent = accounts.login(session, SETTINGS, "parent@example.org", PASSWORD, None)
    accounts.login(session, SETTINGS, "parent@example.org", PASSWORD, None)  # active: not listed
    accounts.revoke_session(session, SETTINGS, recent.session_id, "logout")
    listed = {r["session_id"]: r["until"] for r in accounts.recent_revocations(session, SETTINGS)}
    assert set(listed) == {old.session_id, recent.session_id}
    assert dt.datetime.fromisoformat(listed[recent.session_id]) == clock.now() + SETTINGS.access_ttl
    clock.advance(dt.timedelta(seconds=2))
    listed = [r["session_id"] for r in accounts.recent_revocations(session, SETTINGS)]
    assert listed == [recent.session_id]
