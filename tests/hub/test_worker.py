import pytest
from django.core import mail
from django.db import transaction

from hub.choices import Role
from hub.models import Invitation
from hub.services import invitation_create
from tests.conftest import wait_for


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_task_enqueued_on_commit_is_run_by_a_real_worker(celery_worker, owner):
    with transaction.atomic():
        invitation = invitation_create(actor_membership=owner, email="newhire@example.com", role=Role.VIEWER)
        # Nothing is sent before the transaction commits.
        assert Invitation.objects.get(pk=invitation.pk).sent_at is None

    sent = wait_for(lambda: Invitation.objects.get(pk=invitation.pk).sent_at)
    assert sent is not None
    assert [m.to for m in mail.outbox] == [["newhire@example.com"]]
    assert "/invitations/" in mail.outbox[0].body
