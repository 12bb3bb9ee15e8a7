"""Races on one port (PostgreSQL only: SQLite serializes writers, so it cannot show a race).

Many requests arriving at once must still never oversubscribe a port nor book a VLAN twice: the
row lock on the port and the database constraints decide, and every loser gets a readable 409.
"""

import threading
from collections import Counter

import pytest
from django.db import connection, connections

from fabric.choices import ConnectionState
from fabric.models import Connection, Port, VlanAssignment
from fabric.services import connection_approve, connection_cancel, connection_request
from hub.errors import DomainError

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row-lock races need PostgreSQL"),
]

THREADS = 8


def _race(work, count=THREADS) -> list[str]:
    """Run ``work(i)`` in ``count`` threads released together; return "ok" or each error's code."""
    barrier = threading.Barrier(count)
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(index):
        try:
            barrier.wait(timeout=10)
            work(index)
            outcome = "ok"
        except DomainError as exc:
            outcome = exc.code
        except Exception as exc:  # noqa: BLE001 - an unexpected error is a test failure, reported below
            outcome = f"unexpected {exc.__class__.__name__}: {exc}"
        finally:
            connections.close_all()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(outcomes) == count, "a thread hung"
    return outcomes


def _fresh(port) -> Port:
    # Each thread works on its own instances, as separate requests would.
    return Port.objects.select_related("metro", "organization").get(pk=port.pk)


def test_concurrent_requests_never_oversubscribe_a_port(acme, cloud):
    # acme-fra is 1 Gbps: three 300 Mbps requests fit, the other five must be refused.
    def request(index):
        connection_request(
            membership=acme.member,
            name=f"race-{index}",
            a_port=_fresh(acme.fra),
            z_port=_fresh(cloud.fra),
            bandwidth_mbps=300,
        )

    outcomes = Counter(_race(request))
    assert outcomes == {"ok": 3, "port_capacity": THREADS - 3}
    assert Port.objects.get(pk=acme.fra.pk).committed_mbps == 900
    assert Port.objects.get(pk=cloud.fra.pk).committed_mbps == 900
    assert Connection.objects.count() == 3
    assert sorted(VlanAssignment.objects.filter(port=acme.fra).values_list("vlan", flat=True)) == [100, 101, 102]


def test_concurrent_requests_for_the_same_vlan_book_it_once(acme, cloud):
    def request(index):
        connection_request(
            membership=acme.member,
            name=f"vlan-{index}",
            a_port=_fresh(acme.fra10),
            z_port=_fresh(cloud.fra),
            bandwidth_mbps=10,
            a_vlan=500,
        )

    outcomes = Counter(_race(request))
    assert outcomes == {"ok": 1, "vlan_in_use": THREADS - 1}
    assert VlanAssignment.objects.filter(port=acme.fra10, vlan=500).count() == 1
    assert Connection.objects.count() == 1
    # The losers' bandwidth reservations were rolled back with them.
    assert Port.objects.get(pk=acme.fra10.pk).committed_mbps == 10


def test_concurrent_approvals_choosing_the_same_z_vlan_book_it_once(acme, cloud):
    requests = [
        connection_request(
            membership=acme.member, name=f"r{i}", a_port=acme.fra10, z_port=cloud.fra, bandwidth_mbps=10
        ).connections[0]
        for i in range(THREADS)
    ]

    def approve(index):
        connection_approve(
            membership=cloud.member, connection=Connection.objects.get(pk=requests[index].pk), z_vlan=777
        )

    outcomes = Counter(_race(approve))
    assert outcomes == {"ok": 1, "vlan_in_use": THREADS - 1}
    assert VlanAssignment.objects.filter(port=cloud.fra, vlan=777).count() == 1
    assert Connection.objects.filter(state=ConnectionState.PENDING_APPROVAL).count() == THREADS - 1


def test_approve_and_cancel_racing_on_one_request_have_one_winner(acme, cloud):
    request = connection_request(
        membership=acme.member, name="contested", a_port=acme.fra, z_port=cloud.fra, bandwidth_mbps=100
    ).connections[0]

    def act(index):
        contested = Connection.objects.get(pk=request.pk)
        if index % 2:
            connection_cancel(membership=acme.member, connection=contested)
        else:
            connection_approve(membership=cloud.member, connection=contested)

    outcomes = Counter(_race(act, count=2))
    assert outcomes == {"ok": 1, "invalid_state": 1}
    final = Connection.objects.get(pk=request.pk)
    if final.state == ConnectionState.CANCELLED:
        assert VlanAssignment.objects.filter(connection=final).count() == 0
        assert Port.objects.get(pk=acme.fra.pk).committed_mbps == 0
    else:
        assert final.state in (ConnectionState.PROVISIONING, ConnectionState.ACTIVE)
        assert VlanAssignment.objects.filter(connection=final).count() == 2
        assert Port.objects.get(pk=acme.fra.pk).committed_mbps == 100
