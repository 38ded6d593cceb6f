import uuid

import pytest
from nameko.testing.services import entrypoint_hook

from services.identity.service import IdentityService

pytestmark = pytest.mark.integration


def test_register_and_login_refused_until_verified(container_factory, identity_config):
    container = container_factory(IdentityService, identity_config)
    container.start()
    email = f"parent-{uuid.uuid4().hex[:6]}@example.org"
    with entrypoint_hook(container, "register") as register:
        account = register(email, "correct horse battery", "fr")
    assert account["email"] == email
    with entrypoint_hook(container, "login") as login:
        from services.identity.exceptions import EmailNotVerified

        with pytest.raises(EmailNotVerified):
            login(email, "correct horse battery")
