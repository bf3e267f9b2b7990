"""gatewayctl's offline commands: exit status and output contract."""

from __future__ import annotations

import json

import pytest

from gateway.cli import main
from gateway.smpp.codec import encode_pdu
from gateway.smpp.constants import Tag
from gateway.smpp.pdu import DeliverSm


def test_decode_prints_fields_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    pdu = DeliverSm(
        sequence_number=9,
        esm_class=4,
        short_message=b"id:1 stat:DELIVRD",
        tlvs={Tag.RECEIPTED_MESSAGE_ID: "1", Tag.MESSAGE_STATE: 2},
    )
    assert main(["decode", encode_pdu(pdu).hex(), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["command"] == "deliver_sm"
    assert out["sequence_number"] == 9
    assert out["short_message"] == b"id:1 stat:DELIVRD".hex()
    assert out["tlvs"] == {"0x001e": "1", "0x0427": 2}


def test_decode_rejects_bad_pdu(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "0000001000000077000000000000002a"]) == 1
    assert "ESME_RINVCMDID" in capsys.readouterr().err


def test_decode_rejects_bad_hex(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "zz"]) == 2
    assert "E_BAD_HEX" in capsys.readouterr().err
