"""The SMSC simulator: over real sockets with smpplib (an independent client) and a raw socket
client on our codec, and its sans-I/O core driven with a synthetic clock."""

from __future__ import annotations

import itertools
import json
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import smpplib.client
import smpplib.exceptions
import smpplib.smpp

from gateway.smpp.codec import FrameDecoder, encode_pdu
from gateway.smpp.constants import CommandId, MessageState, Tag
from gateway.smpp.constants import CommandStatus as S
from gateway.smpp.pdu import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    CancelSm,
    DataSm,
    DeliverSm,
    DeliverSmResp,
    DistributionListDest,
    EnquireLink,
    Pdu,
    QuerySm,
    ReplaceSm,
    SmeDest,
    SubmitMulti,
    SubmitSm,
    UnbindResp,
)
from gateway.smpp.reassembly import Reassembler, parse_udh
from gateway.smpp.receipts import parse_receipt
from gateway.smpp.text import decode_text
from gateway.smsc_sim import (
    Account,
    ConfigError,
    SimConfig,
    SimulatorThread,
    SmscCore,
    build_config,
    load_config,
)
from gateway.smsc_sim.__main__ import main as cli_main
from gateway.smsc_sim.core import Close, Send

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_ID, PASSWORD = "smppclient1", "password"
RECEIPT_RE = re.compile(
    r"^id:(?P<id>\S+) sub:001 dlvrd:(?P<dlvrd>\d{3}) submit date:\d{10} done date:\d{10} "
    r"stat:(?P<stat>DELIVRD|UNDELIV) err:(?P<err>\d{3}) text:(?P<text>.{0,20})$"
)
LONG_UNICODE = "Grüße aus Zürich! " * 6 + "👋 fin"  # UCS-2, needs several parts


def sim_thread(**changes: object) -> SimulatorThread:
    config = SimConfig(port=0, seed=1, receipt_delay=0.01, keep_submitted=100)
    return SimulatorThread(config.replace(**changes))


# -- smpplib helpers ----------------------------------------------------------------------------


def smpplib_client(sim: SimulatorThread) -> smpplib.client.Client:
    client = smpplib.client.Client("127.0.0.1", sim.port, timeout=5, allow_unknown_opt_params=True)
    client.connect()
    return client


def ack(client: smpplib.client.Client, pdu: smpplib.command.Command) -> None:
    resp = smpplib.smpp.make_pdu("deliver_sm_resp", client=client)
    resp.sequence = pdu.sequence
    client.send_pdu(resp)


def read(client: smpplib.client.Client, count: int) -> list[smpplib.command.Command]:
    """The next count PDUs; deliver_sm are acknowledged."""
    pdus = []
    for _ in range(count):
        pdu = client.read_pdu()
        if pdu.command == "deliver_sm":
            ack(client, pdu)
        pdus.append(pdu)
    return pdus


def submit(client: smpplib.client.Client, text: str, receipt: int = 1) -> None:
    client.send_message(
        source_addr="447700900001",
        destination_addr="447700900002",
        short_message=text.encode(),
        registered_delivery=receipt,
    )


def text_of(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- a raw client on our codec, for what smpplib will not send --------------------------------


class RawEsme:
    """A blocking ESME speaking raw PDUs: on a new connection to ``port``, or on ``sock`` (a
    TLS-wrapped one, say)."""

    def __init__(self, port: int = 0, *, sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=5)
        self.decoder = FrameDecoder()
        self.sequences = itertools.count(1)

    def send(self, pdu: Pdu) -> int:
        if not pdu.sequence_number:
            pdu.sequence_number = next(self.sequences)
        self.sock.sendall(encode_pdu(pdu))
        return pdu.sequence_number

    def recv(self) -> Pdu:
        while (pdu := self.decoder.next_pdu()) is None:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("closed by the simulator")
            self.decoder.feed(data)
        return pdu

    def closed(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw_bound() -> Iterator[tuple[SimulatorThread, RawEsme]]:
    with sim_thread() as sim:
        esme = RawEsme(sim.port)
        esme.send(BindTransceiver(system_id=SYSTEM_ID, password=PASSWORD))
        assert esme.recv().command_status == S.ESME_ROK
        yield sim, esme
        esme.close()


# -- binds, submits, receipts over smpplib ---------------------------------------------------


def test_smpplib_bind_submit_and_receipts() -> None:
    with sim_thread() as sim:
        client = smpplib_client(sim)
        resp = client.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
        assert resp.status == 0
        assert text_of(resp.system_id) == "SMSCSIM"
        for n in range(5):
            submit(client, f"hello number {n} from a long enough text")
        pdus = read(client, 10)
        resps = [p for p in pdus if p.command == "submit_sm_resp"]
        receipts = [p for p in pdus if p.command == "deliver_sm"]
        assert [r.status for r in resps] == [0] * 5
        ids = [text_of(r.message_id) for r in resps]
        assert len(set(ids)) == 5
        for pdu in receipts:
            assert pdu.esm_class == 0x04
            match = RECEIPT_RE.match(text_of(pdu.short_message))
            assert match, pdu.short_message
            assert match["stat"] == "DELIVRD" and match["err"] == "000"
            assert match["text"] in {f"hello number {n} from a long"[:20] for n in range(5)}
            assert text_of(pdu.receipted_message_id) == match["id"]
            assert pdu.message_state == MessageState.DELIVERED
            assert text_of(pdu.source_addr) == "447700900002"  # the handset answers
        assert sorted(RECEIPT_RE.match(text_of(p.short_message))["id"] for p in receipts) == sorted(
            ids
        )
        client.unbind()
        client.disconnect()
        sim.wait_for(lambda: sim.counters.connections_closed == 1)
        counters = sim.counters
        assert (counters.binds_ok, counters.submit_sm, counters.accepted) == (1, 5, 5)
        assert (counters.receipts_sent, counters.receipts_delivered) == (5, 5)
        assert (counters.deliver_sm_acked, counters.unbinds, counters.generic_nacks) == (5, 1, 0)
        assert sim.submitted[0].short_message.startswith(b"hello number 0")


def test_receipts_go_round_robin_to_receiver_binds_of_the_system_id() -> None:
    with sim_thread(receipt_tlvs=False) as sim:
        sender = smpplib_client(sim)
        sender.bind_transmitter(system_id=SYSTEM_ID, password=PASSWORD)
        receivers = [smpplib_client(sim) for _ in range(2)]
        for receiver in receivers:
            receiver.bind_receiver(system_id=SYSTEM_ID, password=PASSWORD)
        for n in range(4):
            submit(sender, f"msg {n}")
        ids = {text_of(p.message_id) for p in read(sender, 4)}
        got = [read(receiver, 2) for receiver in receivers]
        for pdus in got:
            for pdu in pdus:
                assert pdu.command == "deliver_sm"
                assert getattr(pdu, "receipted_message_id", None) is None  # TLVs disabled
        received = {parse_receipt(p.short_message).message_id for pdus in got for p in pdus}
        assert received == ids
        for client in (sender, *receivers):
            client.disconnect()


def test_failed_receipts_carry_the_error_and_tlvs() -> None:
    with sim_thread(fail_ratio=1.0, fail_error=34) as sim:
        client = smpplib_client(sim)
        client.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
        submit(client, "doomed")
        _, receipt = read(client, 2)
        match = RECEIPT_RE.match(text_of(receipt.short_message))
        assert match and (match["stat"], match["err"], match["dlvrd"]) == ("UNDELIV", "034", "000")
        assert receipt.message_state == MessageState.UNDELIVERABLE
        assert receipt.network_error_code == bytes([3, 0, 34])
        client.disconnect()
        assert (sim.counters.receipts_failed, sim.counters.receipts_delivered) == (1, 0)


def test_registered_delivery_2_asks_for_failure_receipts_only() -> None:
    with sim_thread(fail_ratio=0.0) as sim:
        client = smpplib_client(sim)
        client.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
        submit(client, "no receipt wanted", receipt=0)
        submit(client, "only on failure", receipt=2)
        submit(client, "always", receipt=1)
        pdus = read(client, 4)
        assert [p.command for p in pdus].count("deliver_sm") == 1
        client.disconnect()


def test_receipts_wait_for_a_receiver_in_a_bounded_queue() -> None:
    with sim_thread(receipt_queue_limit=3) as sim:
        sender = smpplib_client(sim)
        sender.bind_transmitter(system_id=SYSTEM_ID, password=PASSWORD)
        for n in range(5):
            submit(sender, f"msg {n}")
        assert all(p.status == 0 for p in read(sender, 5))
        assert sim.counters.receipts_dropped == 2
        receiver = smpplib_client(sim)
        receiver.bind_receiver(system_id=SYSTEM_ID, password=PASSWORD)
        receipts = read(receiver, 3)
        assert [p.command for p in receipts] == ["deliver_sm"] * 3
        sim.wait_for(lambda: sim.counters.deliver_sm_acked == 3)
        assert sim.counters.receipts_sent == 3
        sender.disconnect()
        receiver.disconnect()


def test_bind_failures() -> None:
    with sim_thread() as sim:
        client = smpplib_client(sim)
        with pytest.raises(smpplib.exceptions.PDUError) as wrong_password:
            client.bind_transceiver(system_id=SYSTEM_ID, password="wrong")
        assert wrong_password.value.args[1] == S.ESME_RBINDFAIL
        with pytest.raises(smpplib.exceptions.PDUError) as unknown:
            client.bind_transceiver(system_id="nobody", password=PASSWORD)
        assert unknown.value.args[1] == S.ESME_RINVSYSID
        assert client.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD).status == 0
        client.disconnect()
        assert (sim.counters.binds_failed, sim.counters.binds_ok) == (2, 1)


def test_max_binds_per_account() -> None:
    accounts = (Account(SYSTEM_ID, PASSWORD, max_binds=1),)
    with sim_thread(accounts=accounts) as sim:
        first, second = smpplib_client(sim), smpplib_client(sim)
        first.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
        with pytest.raises(smpplib.exceptions.PDUError) as refused:
            second.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
        assert refused.value.args[1] == S.ESME_RBINDFAIL
        first.disconnect()
        second.disconnect()


def test_requests_before_bind_and_in_the_wrong_bind_state() -> None:
    with sim_thread() as sim:
        esme = RawEsme(sim.port)
        seq = esme.send(SubmitSm(source_addr="1", destination_addr="2", short_message=b"x"))
        resp = esme.recv()
        assert (resp.command_id, resp.command_status) == (
            CommandId.SUBMIT_SM_RESP,
            S.ESME_RINVBNDSTS,
        )
        assert resp.sequence_number == seq
        esme.send(EnquireLink())
        assert esme.recv().command_id == CommandId.ENQUIRE_LINK_RESP
        esme.send(BindReceiver(system_id=SYSTEM_ID, password=PASSWORD))
        assert esme.recv().command_status == S.ESME_ROK
        esme.send(SubmitSm(short_message=b"x"))
        assert esme.recv().command_status == S.ESME_RINVBNDSTS  # a receiver cannot submit
        esme.send(BindReceiver(system_id=SYSTEM_ID, password=PASSWORD))
        assert esme.recv().command_status == S.ESME_RALYBND
        esme.close()
        assert sim.counters.rejected == 2


def test_throttling_above_tps() -> None:
    # 20 submits at 1 TPS (bucket of 1): unless they took 19 s, some must be throttled.
    with sim_thread(tps=1.0) as sim:
        client = smpplib_client(sim)
        client.bind_transmitter(system_id=SYSTEM_ID, password=PASSWORD)
        for n in range(20):
            submit(client, f"burst {n}", receipt=0)
        statuses = [p.status for p in read(client, 20)]
        assert statuses[0] == S.ESME_ROK
        assert set(statuses) == {S.ESME_ROK, S.ESME_RTHROTTLED}
        assert sim.counters.throttled == statuses.count(S.ESME_RTHROTTLED)
        assert sim.counters.accepted == statuses.count(S.ESME_ROK)
        assert sim.counters.submit_sm == 20
        client.disconnect()


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"id_format": "hex"}, r"[0-9a-f]+"),
        ({"id_format": "hex", "id_uppercase": True, "id_width": 12}, r"[0-9A-F]{12}"),
        ({"id_format": "decimal"}, r"[0-9]+"),
        ({"id_format": "decimal", "id_width": 10, "id_start": 7}, r"0{9}[7-9]|0{8}1[0-6]"),
    ],
)
def test_message_id_formats(changes: dict[str, object], pattern: str) -> None:
    with sim_thread(**changes) as sim:
        client = smpplib_client(sim)
        client.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
        for n in range(10):
            submit(client, f"id {n}", receipt=0)
        ids = [text_of(p.message_id) for p in read(client, 10)]
        assert all(re.fullmatch(pattern, i) for i in ids), ids
        assert len(set(ids)) == 10
        if changes.get("id_format") == "hex":
            assert any(not i.isdigit() for i in ids)  # really hexadecimal
        client.disconnect()


# -- MO injection ------------------------------------------------------------------------------


def test_mo_single_gsm_message() -> None:
    with sim_thread() as sim:
        client = smpplib_client(sim)
        client.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
        sim.inject_mo("Hi there", source_addr="447700900777", destination_addr="555")
        (pdu,) = read(client, 1)
        assert (pdu.esm_class, pdu.data_coding) == (0, 0)
        assert decode_text(0, pdu.short_message) == "Hi there"
        assert (text_of(pdu.source_addr), text_of(pdu.destination_addr)) == ("447700900777", "555")
        sim.wait_for(lambda: sim.counters.deliver_sm_acked == 1)
        assert sim.counters.mo_sent == 1
        client.disconnect()


def test_mo_multipart_udh_reassembles() -> None:
    with sim_thread() as sim:
        client = smpplib_client(sim)
        client.bind_receiver(system_id=SYSTEM_ID, password=PASSWORD)
        parts = sim.inject_mo(LONG_UNICODE, system_id=SYSTEM_ID, segmentation="udh8")
        assert len(parts) > 1
        reassembler = Reassembler(timeout=10, max_pending=4)
        whole = None
        for pdu in read(client, len(parts)):
            assert pdu.esm_class & 0x40 and pdu.data_coding == 8
            info, payload = parse_udh(pdu.short_message)
            assert info is not None and info.reference_bits == 8
            whole = reassembler.add("mo", info.reference, info.total, info.sequence, payload, 0.0)
        assert whole is not None and decode_text(8, whole) == LONG_UNICODE
        client.disconnect()
        assert sim.counters.mo_sent == len(parts)


def test_mo_multipart_sar_reassembles() -> None:
    text = "A long GSM message with extension chars like € and [brackets]. " * 4
    with sim_thread() as sim:
        client = smpplib_client(sim)
        client.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
        parts = sim.inject_mo(text, segmentation="sar")
        assert len(parts) > 1
        reassembler = Reassembler(timeout=10, max_pending=4)
        whole = None
        for pdu in read(client, len(parts)):
            assert pdu.esm_class == 0 and pdu.data_coding == 0
            whole = reassembler.add(
                "mo",
                pdu.sar_msg_ref_num,
                pdu.sar_total_segments,
                pdu.sar_segment_seqnum,
                pdu.short_message,
                0.0,
            )
        assert whole is not None and decode_text(0, whole) == text
        client.disconnect()


# -- malformed input, drops, unbind ------------------------------------------------------------


def test_garbage_gets_generic_nack_and_the_connection_survives(raw_bound) -> None:
    sim, esme = raw_bound
    unknown_command = (16).to_bytes(4, "big") + (0x99).to_bytes(4, "big") + bytes(4)
    esme.sock.sendall(unknown_command + (77).to_bytes(4, "big"))
    nack = esme.recv()
    assert (nack.command_id, nack.command_status) == (CommandId.GENERIC_NACK, S.ESME_RINVCMDID)
    assert nack.sequence_number == 77
    # A submit_sm whose source_addr has no NUL within 21 octets: its own resp, with the status.
    body = bytes([0]) + bytes([1, 1]) + b"9" * 30 + b"\0" + bytes(40)
    header = (16 + len(body)).to_bytes(4, "big") + (4).to_bytes(4, "big") + bytes(4)
    esme.sock.sendall(header + (78).to_bytes(4, "big") + body)
    resp = esme.recv()
    assert (resp.command_id, resp.command_status) == (CommandId.SUBMIT_SM_RESP, S.ESME_RINVSRCADR)
    assert resp.sequence_number == 78
    esme.send(SubmitSm(source_addr="1", destination_addr="2", short_message=b"still here"))
    assert esme.recv().command_status == S.ESME_ROK
    assert (sim.counters.generic_nacks, sim.counters.decode_errors) == (1, 2)


def test_command_length_above_max_gets_generic_nack_then_close() -> None:
    with sim_thread(max_command_length=4096) as sim:
        esme = RawEsme(sim.port)
        esme.sock.sendall(
            (5000).to_bytes(4, "big") + (4).to_bytes(4, "big") + bytes(4) + bytes([0, 0, 0, 9])
        )
        nack = esme.recv()
        assert (nack.command_id, nack.command_status) == (CommandId.GENERIC_NACK, S.ESME_RINVCMDLEN)
        assert nack.sequence_number == 9
        assert esme.closed()
        sim.wait_for(lambda: sim.counters.connections_closed == 1)
        assert (sim.counters.framing_errors, sim.counters.generic_nacks) == (1, 1)
        esme.close()


def drop_point(seed: int) -> int:
    """How many enquire_links a connection survives under drop_ratio 0.3 with this seed."""
    with sim_thread(drop_ratio=0.3, seed=seed) as sim:
        esme = RawEsme(sim.port)
        answered = 0
        try:
            for _ in range(200):
                esme.send(EnquireLink())
                esme.recv()
                answered += 1
        except (EOFError, ConnectionResetError):
            pass
        esme.close()
        sim.wait_for(lambda: sim.counters.connections_closed == 1)
        assert sim.counters.drops == 1
        return answered


def test_random_drops_are_reproducible_with_a_seed() -> None:
    points = [drop_point(seed) for seed in (5, 5, 6, 7, 8)]
    assert points[0] == points[1]
    assert len(set(points)) > 1  # the seed matters
    assert max(points) < 200


def test_unbind_is_answered_then_closed() -> None:
    with sim_thread() as sim:
        client = smpplib_client(sim)
        client.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
        resp = client.unbind()
        assert (resp.command, resp.status) == ("unbind_resp", 0)
        with pytest.raises(smpplib.exceptions.ConnectionError):
            client.read_pdu()
        client.disconnect()
        sim.wait_for(lambda: sim.counters.connections_closed == 1)


def test_enquire_link_answered_over_smpplib() -> None:
    with sim_thread() as sim:
        client = smpplib_client(sim)
        client.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
        client.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=client))
        (resp,) = read(client, 1)
        assert resp.command == "enquire_link_resp"
        client.disconnect()
        assert sim.counters.enquire_links_received == 1


# -- the other requests, over the raw client --------------------------------------------------


def test_data_sm_and_submit_multi(raw_bound) -> None:
    sim, esme = raw_bound
    esme.send(
        DataSm(
            source_addr="1",
            destination_addr="2",
            registered_delivery=1,
            tlvs={Tag.MESSAGE_PAYLOAD: b"payload text"},
        )
    )
    resp = esme.recv()
    assert (resp.command_id, resp.command_status) == (CommandId.DATA_SM_RESP, S.ESME_ROK)
    receipt = esme.recv()
    assert isinstance(receipt, DeliverSm)
    assert parse_receipt(receipt.short_message, receipt.tlvs).text == "payload text"
    esme.send(DeliverSmResp(sequence_number=receipt.sequence_number))
    dests = [SmeDest(1, 1, "4477"), DistributionListDest("friends"), SmeDest(1, 1, "4478")]
    esme.send(SubmitMulti(source_addr="1", dest_addresses=dests, short_message=b"hi all"))
    resp = esme.recv()
    assert resp.command_status == S.ESME_ROK and resp.message_id
    assert [(u.address, u.error_status_code) for u in resp.unsuccess_smes] == [
        ("friends", S.ESME_RINVDLNAME)
    ]
    esme.send(SubmitMulti(source_addr="1", dest_addresses=[], short_message=b"nobody"))
    assert esme.recv().command_status == S.ESME_RINVNUMDESTS
    assert (sim.counters.data_sm, sim.counters.submit_multi, sim.counters.accepted) == (1, 2, 2)


def test_query_cancel_replace(raw_bound) -> None:
    sim, esme = raw_bound
    esme.send(SubmitSm(source_addr="1", destination_addr="2", short_message=b"x"))
    message_id = esme.recv().message_id
    esme.send(QuerySm(message_id=message_id, source_addr="1"))
    query = esme.recv()
    assert query.command_status == S.ESME_ROK and query.message_id == message_id
    assert query.message_state in (MessageState.ENROUTE, MessageState.DELIVERED)
    esme.send(QuerySm(message_id="nope"))
    assert esme.recv().command_status == S.ESME_RQUERYFAIL
    esme.send(CancelSm(message_id="nope"))
    assert esme.recv().command_status == S.ESME_RCANCELFAIL
    esme.send(ReplaceSm(message_id="nope", short_message=b"y"))
    assert esme.recv().command_status == S.ESME_RREPLACEFAIL
    assert (sim.counters.query_sm, sim.counters.cancel_sm, sim.counters.replace_sm) == (2, 1, 1)


# -- the sans-I/O core with a synthetic clock -------------------------------------------------

WALL = 1_700_000_000.0


def make_core(**changes: object) -> SmscCore:
    return SmscCore(SimConfig(seed=1).replace(**changes), 0.0, wall_clock=lambda: WALL)


def feed(core: SmscCore, conn: int, *pdus: Pdu, now: float = 0.0) -> list[Pdu]:
    for n, pdu in enumerate(pdus, start=1):
        pdu.sequence_number = pdu.sequence_number or n
    actions = core.receive(conn, b"".join(encode_pdu(p) for p in pdus), now)
    return [a.pdu for a in actions if isinstance(a, Send)]


def bound(core: SmscCore, bind: type[Pdu] = BindTransceiver) -> int:
    conn = core.open(0.0)
    (resp,) = feed(core, conn, bind(system_id=SYSTEM_ID, password=PASSWORD))
    assert resp.command_status == S.ESME_ROK
    return conn


def sent(actions: list) -> list[Pdu]:
    return [a.pdu for a in actions if isinstance(a, Send)]


def receipt_submit(text: bytes = b"x") -> SubmitSm:
    return SubmitSm(
        source_addr="1", destination_addr="2", registered_delivery=1, short_message=text
    )


def test_core_token_bucket_uses_the_given_clock() -> None:
    core = make_core(tps=2.0)
    conn = bound(core)
    statuses = [r.command_status for r in feed(core, conn, *(SubmitSm() for _ in range(5)))]
    assert statuses == [0, 0, S.ESME_RTHROTTLED, S.ESME_RTHROTTLED, S.ESME_RTHROTTLED]
    later = [
        r.command_status for r in feed(core, conn, SubmitSm(), SubmitSm(), SubmitSm(), now=1.0)
    ]
    assert later == [0, 0, S.ESME_RTHROTTLED]
    assert (core.counters.throttled, core.counters.accepted) == (4, 4)


def test_core_receipt_timing_latency_and_window() -> None:
    core = make_core(receipt_delay=5.0, latency_ms=50.0, deliver_window=2)
    conn = bound(core)
    actions = core.receive(conn, b"".join(encode_pdu(receipt_submit()) for _ in range(3)), 0.0)
    assert [a.at for a in actions] == [pytest.approx(0.05)] * 3  # answered after the latency
    assert core.next_deadline() == pytest.approx(5.05)
    assert sent(core.poll(5.0)) == []
    deliveries = sent(core.poll(5.05))
    assert len(deliveries) == 2  # the window is full
    assert sent(core.poll(6.0)) == []
    assert feed(core, conn, DeliverSmResp(sequence_number=deliveries[0].sequence_number)) == []
    assert len(sent(core.poll(6.0))) == 1
    assert core.counters.deliver_sm_acked == 1


def test_core_msgqful_when_too_many_deliver_sm_are_unacked() -> None:
    core = make_core(receipt_delay=0.0, msgqful_unacked=2)
    conn = bound(core)
    feed(core, conn, receipt_submit(), receipt_submit())
    assert len(sent(core.poll(0.0))) == 2
    (resp,) = feed(core, conn, SubmitSm(sequence_number=9))
    assert resp.command_status == S.ESME_RMSGQFUL
    assert core.counters.queue_full == 1


def test_core_unacked_deliveries_are_requeued_when_the_link_drops() -> None:
    core = make_core(receipt_delay=0.0)
    first = bound(core)
    feed(core, first, receipt_submit())
    (receipt,) = sent(core.poll(0.0))
    core.lost(first, 1.0)
    bound(core, BindReceiver)
    (again,) = sent(core.poll(1.0))
    assert again.short_message == receipt.short_message
    assert core.counters.deliver_sm_requeued == 1 and core.counters.receipts_sent == 1


def test_core_deliver_timeout_frees_the_window() -> None:
    core = make_core(receipt_delay=0.0, deliver_timeout=3.0, deliver_window=1)
    conn = bound(core)
    feed(core, conn, receipt_submit(), receipt_submit())
    assert len(sent(core.poll(0.0))) == 1
    assert core.next_deadline() == pytest.approx(3.0)
    assert len(sent(core.poll(3.0))) == 1
    assert core.counters.deliver_sm_timeouts == 1


def test_core_cancel_and_query_states() -> None:
    core = make_core(receipt_delay=10.0)
    conn = bound(core)
    (resp,) = feed(core, conn, receipt_submit())
    (query,) = feed(core, conn, QuerySm(message_id=resp.message_id, sequence_number=2))
    assert query.message_state == MessageState.ENROUTE
    (replaced,) = feed(core, conn, ReplaceSm(message_id=resp.message_id, sequence_number=3))
    assert replaced.command_status == S.ESME_ROK
    (cancelled,) = feed(core, conn, CancelSm(message_id=resp.message_id, sequence_number=4))
    assert cancelled.command_status == S.ESME_ROK
    (query,) = feed(core, conn, QuerySm(message_id=resp.message_id, sequence_number=5), now=11)
    assert query.message_state == MessageState.DELETED
    assert sent(core.poll(11.0)) == []  # no receipt for a cancelled message
    (again,) = feed(core, conn, CancelSm(message_id=resp.message_id, sequence_number=6))
    assert again.command_status == S.ESME_RCANCELFAIL
    # cancel by addresses, then a final message cannot be cancelled
    feed(core, conn, receipt_submit(), now=20.0)
    (by_address,) = feed(core, conn, CancelSm(source_addr="1", destination_addr="2"), now=21.0)
    assert by_address.command_status == S.ESME_ROK
    (resp,) = feed(core, conn, SubmitSm(source_addr="1", sequence_number=7), now=30.0)
    (query,) = feed(core, conn, QuerySm(message_id=resp.message_id, sequence_number=8), now=41.0)
    assert query.message_state == MessageState.DELIVERED and query.final_date.endswith("000+")
    (late,) = feed(core, conn, CancelSm(message_id=resp.message_id, sequence_number=9), now=41.0)
    assert late.command_status == S.ESME_RCANCELFAIL


def test_core_sends_enquire_link_and_periodic_mo() -> None:
    core = make_core(enquire_link_interval=2.0, mo_interval=3.0, mo_text="tick")
    bound(core, BindReceiver)
    assert core.next_deadline() == 2.0
    (enquire,) = sent(core.poll(2.0))
    assert enquire.command_id == CommandId.ENQUIRE_LINK
    (mo,) = sent(core.poll(3.0))
    assert isinstance(mo, DeliverSm) and mo.short_message == b"tick"
    assert (core.counters.enquire_links_sent, core.counters.mo_sent) == (1, 1)


def test_core_drop_closes_without_answering() -> None:
    core = make_core(drop_ratio=1.0)
    conn = core.open(0.0)
    actions = core.receive(conn, encode_pdu(EnquireLink(sequence_number=1)), 0.0)
    assert actions == [Close(conn, abort=True)]
    assert core.receive(conn, encode_pdu(EnquireLink(sequence_number=2)), 0.0) == []


def test_core_jitter_is_seeded() -> None:
    def latencies(seed: int) -> list[float]:
        core = SmscCore(SimConfig(seed=seed, jitter_ms=100.0), 0.0)
        conn = core.open(0.0)
        pdus = b"".join(encode_pdu(EnquireLink(sequence_number=n)) for n in range(1, 6))
        return [a.at for a in core.receive(conn, pdus, 0.0)]

    assert latencies(3) == latencies(3) != latencies(4)
    assert all(0 <= at <= 0.1 for at in latencies(3))


# -- configuration and the command line -------------------------------------------------------


def test_config_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text(
        """
        [server]
        port = 0
        seed = 3
        [ids]
        format = "decimal"
        [receipts]
        fail_ratio = 0.25
        [[accounts]]
        system_id = "alpha"
        password = "a"
        tps = 5
        [[accounts]]
        system_id = "beta"
        password = "b"
        """
    )
    config = load_config(path, {"latency.fixed_ms": (3, "--latency-ms")})
    assert (config.port, config.seed, config.id_format, config.fail_ratio) == (
        0,
        3,
        "decimal",
        0.25,
    )
    assert config.latency_ms == 3.0
    assert config.accounts == (Account("alpha", "a", 5.0), Account("beta", "b"))


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"receipts": {"fail_ratio": 1.5}}, "receipts.fail_ratio"),
        ({"receipts": {"delai": 1}}, "receipts.delai"),
        ({"ids": {"format": "octal"}}, "ids.format"),
        ({"server": {"port": "2775"}}, "server.port"),
        ({"accounts": [{"system_id": "x"}]}, "accounts[0].password"),
        ({"accounts": [{"system_id": "x", "password": "much too long"}]}, "accounts[0].password"),
        ({"mo": {"system_id": "ghost"}}, "mo.system_id"),
    ],
)
def test_config_errors_name_the_key(data: dict, key: str) -> None:
    with pytest.raises(ConfigError) as error:
        build_config(data)
    assert error.value.key == key


def test_cli_bad_values_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[faults]\ndrop_ratio = 2\n")
    assert cli_main(["--config", str(bad)]) == 2
    assert "faults.drop_ratio" in capsys.readouterr().err
    assert cli_main(["--fail-ratio", "-1"]) == 2
    assert "--fail-ratio" in capsys.readouterr().err
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\n")
    assert cli_main(["--config", str(broken)]) == 2
    assert "invalid TOML" in capsys.readouterr().err


def test_cli_serves_and_prints_counters_on_sigint() -> None:
    command = [sys.executable, "-m", "gateway.smsc_sim", "--port", "0", "--seed", "1"]
    command += [
        "--system-id",
        "cli",
        "--password",
        "pw",
        "--id-format",
        "decimal",
        "--stats",
        "json",
    ]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        banner = proc.stdout.readline()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+) \(seed 1; accounts: cli", banner)
        assert match, banner
        client = smpplib.client.Client(
            "127.0.0.1", int(match[1]), timeout=5, allow_unknown_opt_params=True
        )
        client.connect()
        client.bind_transmitter(system_id="cli", password="pw")
        submit(client, "via the cli", receipt=0)
        (resp,) = read(client, 1)
        assert text_of(resp.message_id).isdigit()
        client.unbind()
        client.disconnect()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
    counters = json.loads(out)
    assert (counters["binds_ok"], counters["submit_sm"], counters["unbinds"]) == (1, 1, 1)
    assert proc.returncode == 0


def test_example_config_matches_the_defaults() -> None:
    example = ROOT / "gateway" / "smsc_sim" / "example.toml"
    assert load_config(example) == SimConfig()


def test_python_built_configs_are_checked_too() -> None:
    with pytest.raises(ConfigError) as error:
        SmscCore(SimConfig(fail_ratio=2.0), 0.0)
    assert error.value.key == "receipts.fail_ratio"
    duplicate = (Account("a", "x"), Account("a", "y"))
    with pytest.raises(ConfigError, match=r"accounts\[1\]\.system_id"):
        SmscCore(SimConfig(accounts=duplicate), 0.0)


def test_graceful_stop_unbinds_bound_esmes() -> None:
    with sim_thread() as sim, ThreadPoolExecutor(1) as pool:
        esme = RawEsme(sim.port)
        esme.send(BindTransmitter(system_id=SYSTEM_ID, password=PASSWORD))
        assert esme.recv().command_status == S.ESME_ROK
        stopping = pool.submit(sim.call, lambda: sim.sim.stop(graceful=5.0))
        unbind = esme.recv()
        assert unbind.command_id == CommandId.UNBIND
        esme.send(UnbindResp(sequence_number=unbind.sequence_number))
        stopping.result(timeout=5)
        assert esme.closed()
        esme.close()
