import pytest

from services.common.migrate import upgrade


@pytest.fixture(scope="session")
def identity_db_uri(pg_databases):
    uri = pg_databases.create("identity")
    upgrade("identity", uri)
    return uri


@pytest.fixture
def identity_config(amqp_uri, identity_db_uri):
    return {
        "AMQP_URI": amqp_uri,
        "DB_URIS": {"identity": identity_db_uri},
        "PUBLIC_URL": "http://portal.test",
        "OUTBOX_POLL_SECONDS": 0.2,
    }
