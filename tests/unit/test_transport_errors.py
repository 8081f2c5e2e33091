"""A broker refusal becomes hubbub's error with what the operator needs (pure)."""

from __future__ import annotations

import pytest

from hubbub.admin import access
from hubbub.errors import BrokerConnectionError
from hubbub.topology.names import HubNames
from hubbub.transport.errors import (
    AccessRefusedError,
    NotFoundError,
    PreconditionFailedError,
    RefusedError,
    refusal,
)

#: What RabbitMQ 3.10.8 and 4.0.5 answer when a user may not declare queue q.
REPLIES = {
    "3.10": "ACCESS_REFUSED - access to queue 'q' in vhost 'v' refused for user 'u'",
    "4.0": "ACCESS_REFUSED - configure access to queue 'q' in vhost 'v' refused for user 'u'",
}


@pytest.mark.parametrize("version", sorted(REPLIES))
def test_a_403_names_the_user_the_permission_and_the_resource(version):
    error = refusal(403, REPLIES[version], permission="configure", doing="declare queue 'q'")
    assert isinstance(error, AccessRefusedError) and isinstance(error, BrokerConnectionError)
    assert (error.permission, error.kind, error.name, error.vhost, error.user) == (
        "configure",
        "queue",
        "q",
        "v",
        "u",
    )
    assert str(error).startswith("user 'u' lacks configure permission on queue 'q' in vhost 'v'")


def test_rabbitmq_4_names_the_permission_and_its_word_wins():
    reply = REPLIES["4.0"].replace("configure access", "read access")
    error = access.refused(reply, permission="write", doing="x", grant=None)
    assert error is not None and error.permission == "read"


def test_the_admin_grant_is_suggested_on_both_versions():
    grant = access.operator(HubNames("shop"))
    for reply in REPLIES.values():
        error = access.refused(reply, permission="read", doing="read queue 'q'", grant=grant)
        assert error is not None and grant.command("u", "v") in str(error)


def test_404_and_406_keep_their_code_and_406_names_the_argument():
    missing = refusal(404, "NOT_FOUND - no queue 'q' in vhost '/'", permission=None, doing="x")
    assert isinstance(missing, NotFoundError) and missing.code == 404
    reply = "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/'"
    conflict = refusal(406, reply, permission="configure", doing="declare queue 'q'")
    assert isinstance(conflict, PreconditionFailedError) and conflict.argument == "x-message-ttl"
    other = refusal(405, "RESOURCE_LOCKED - exclusive", permission=None, doing="read queue 'q'")
    assert type(other) is RefusedError and "cannot read queue 'q'" in str(other)
