"""The simulator's counters: one object, readable from Python, printable as a table or JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields


@dataclass(slots=True)
class Counters:
    connections_opened: int = 0
    connections_closed: int = 0
    binds_ok: int = 0
    binds_failed: int = 0
    unbinds: int = 0
    submit_sm: int = 0  # every submit_sm received while bound, whatever the answer
    data_sm: int = 0
    submit_multi: int = 0
    accepted: int = 0  # submissions answered ESME_ROK (submit_sm, data_sm, submit_multi)
    throttled: int = 0
    queue_full: int = 0  # submissions answered ESME_RMSGQFUL
    query_sm: int = 0
    cancel_sm: int = 0
    replace_sm: int = 0
    enquire_links_received: int = 0
    enquire_links_sent: int = 0
    receipts_sent: int = 0
    receipts_delivered: int = 0  # stat:DELIVRD among receipts_sent
    receipts_failed: int = 0  # stat:UNDELIV among receipts_sent
    receipts_dropped: int = 0  # not queued: the system_id's delivery queue was full
    mo_sent: int = 0  # deliver_sm PDUs of injected messages (one per part)
    mo_dropped: int = 0
    deliver_sm_acked: int = 0
    deliver_sm_nacked: int = 0  # answered with an error status or generic_nack
    deliver_sm_timeouts: int = 0
    deliver_sm_requeued: int = 0  # unacked when their connection closed: sent again later
    rejected: int = 0  # requests answered with an error status (bind state, unknown id...)
    generic_nacks: int = 0
    decode_errors: int = 0
    framing_errors: int = 0
    drops: int = 0  # connections dropped on purpose (faults.drop_ratio)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def to_table(self) -> str:
        names = [f.name for f in fields(self)]
        width = max(map(len, names))
        return "\n".join(f"{name:<{width}}  {getattr(self, name):>10}" for name in names)
