# cython: language_level=3, boundscheck=True, wraparound=False
"""The store writer's per-message steps, compiled: a new message's rows, a submit_sm_resp and a
delivery receipt, as `SqliteStore` writes them in its batches.

Each step takes the common case itself (the writer's hot statements, its clock, its memory of
answered parts, its event log) and hands anything else, unchanged, to the store's own Python
method for that step: the pure-Python twin, which is also what runs with GATEWAY_PURE=1 or
without this build. Both give the same rows, events, results and writer state; the store's
whole test suite runs on each, and `tests/test_store_writer.py` compares them step by step.

The steps are the Python ones with C locals and without the calls between them: a receipt's
detail and event JSON formatted in place, the writer's clock ticked inline (see
`sqlite_store._WriterConnection.tick`).
"""

from gateway.store.statements import (
    INSERT_EVENT,
    INSERT_MESSAGE,
    INSERT_PART,
    INSERT_PART_SUBMITTED,
    UPDATE_RECEIPT,
    UPDATE_RESP,
    write_step,
)

cdef int _INSERT_EVENT = INSERT_EVENT
cdef int _INSERT_MESSAGE = INSERT_MESSAGE
cdef int _INSERT_PART = INSERT_PART
cdef int _INSERT_PART_SUBMITTED = INSERT_PART_SUBMITTED
cdef int _UPDATE_RECEIPT = UPDATE_RECEIPT
cdef int _UPDATE_RESP = UPDATE_RESP

# Bound by `bind` from gateway.store.sqlite_store (which imports this module: not imported here).
cdef object _Event = None
cdef object _encode = None  # json.encoder.encode_basestring, the C one
cdef object _final_failed = None  # FINAL_FAILED_RECEIPTS
cdef object _new_message_id = None
cdef object _iso_utc = None
cdef object _time = None
cdef object _ReceiptMatch = None
cdef Py_ssize_t _answered_kept = 0


def bind(
    event_class, receipt_match, encode, final_failed, new_message_id, iso_utc, time_fn,
    Py_ssize_t answered_kept,
):
    """The store module's pieces these steps use (called by it as a writer starts)."""
    global _Event, _ReceiptMatch, _encode, _final_failed, _new_message_id, _iso_utc, _time
    global _answered_kept
    _Event, _ReceiptMatch, _encode, _final_failed = event_class, receipt_match, encode, final_failed
    _new_message_id, _iso_utc, _time = new_message_id, iso_utc, time_fn
    _answered_kept = answered_kept


cdef inline long long _tick(conn, double ts) except? -1:
    # _WriterConnection.tick: strictly increasing microseconds
    cdef long long us = <long long>(ts * 1000000)
    cdef long long last = conn.clock_us
    if us <= last:
        us = last + 1
    conn.clock_us = us
    return us


def write_accept(conn, msg, now):
    """`SqliteStore._write_accept`: (message_id, created)."""
    if msg.idempotency_key is not None:
        return None  # the store's own step looks the key up
    message_id = _new_message_id()
    cdef double ts = _time() if now is None else now
    at = _iso_utc(ts)
    run = conn.hot.run
    carrier = msg.carrier
    run(
        _INSERT_MESSAGE,
        (
            message_id,
            msg.client_id,
            msg.client_ref,
            None,
            msg.source_addr,
            msg.dest_addr,
            msg.data_coding,
            msg.payload,
            carrier,
            msg.parts_total,
            at,
            msg.text,
            msg.concat_ref,
            msg.validity_s,
            msg.priority,
            _tick(conn, ts),
        ),
    )
    cdef Py_ssize_t first = 1
    cdef Py_ssize_t n
    if msg.first_part_submitted:
        run(_INSERT_PART_SUBMITTED, (message_id, 1, carrier, at, _tick(conn, ts)))
        first = 2
    for n in range(first, msg.parts_total + 1):
        run(_INSERT_PART, (message_id, n))
    return message_id, True


def write_resp(store, conn, str carrier, tuple resp, str at, double ts):
    """`SqliteStore._write_resp` when the part takes the response at once and no receipt
    waits for its id; None for the store's own step to take it (nothing written)."""
    message_id, part, status, raw, norm = resp
    accepted = status == 0
    if accepted and norm is not None and (carrier, norm) in store._unmatched_keys:
        return None
    last = conn.clock_us
    changed = conn.hot.run(
        _UPDATE_RESP,
        (
            "carrier_accepted" if accepted else "carrier_rejected",
            carrier,
            status,
            at,
            _tick(conn, ts),
            raw,
            norm,
            message_id,
            part,
        ),
    )
    if not changed:  # an earlier resp to archive first, or no such part: the store's step
        conn.clock_us = last  # as if not ticked: the store's step ticks for this one
        return None
    if accepted and norm is not None:  # SqliteStore._remember_answered
        answered = store._answered
        answered_key = store._answered_key
        ours = (message_id, part)
        key = answered_key.pop(ours, None)  # the part answered before: that id is not its now
        if key is not None:
            del answered[key]
        key = (carrier, norm)
        older = answered.pop(key, None)  # the id reused: the newest part has it now
        if older is not None:
            del answered_key[older.message_id, older.part_no]
        answered[key] = _ReceiptMatch(message_id, part)
        answered_key[ours] = key
        if len(answered) > _answered_kept:
            _, oldest = answered.popitem(last=False)
            del answered_key[oldest.message_id, oldest.part_no]
    return 0


def write_receipt(store, conn, str carrier, tuple answer, double ts, str at):
    """The receipt step of `SqliteStore.record_answers` for a receipt whose part the writer
    remembers, with the carrier links' detail (stat and the raw id, str or None): its
    ReceiptMatch. None for anything else, for the store's own step (nothing written)."""
    if len(answer) != 6:  # unchecked indexing here (setup.py: boundscheck off): the store's
        return None
    _, norm_id, state, err, detail, _ = answer
    if carrier is None or type(detail) is not dict:
        return None
    if len(<dict>detail) != 2:
        return None
    if not (err is None or type(err) is str):
        return None
    keys = iter(<dict>detail)
    if next(keys) != "stat" or next(keys) != "carrier_message_id_raw":
        return None
    stat = (<dict>detail)["stat"]
    raw = (<dict>detail)["carrier_message_id_raw"]
    if not (stat is None or type(stat) is str) or not (raw is None or type(raw) is str):
        return None
    answered = store._answered
    match = answered.get((carrier, norm_id))
    if match is None:
        return None
    state = str(state)  # as _receipt_payload: the links give a ReceiptState (a StrEnum)
    message_id = match.message_id
    part = match.part_no
    if type(part) is not int or type(norm_id) is not str:
        return None
    if state == "delivered":
        part_state = "delivered"
    elif state in _final_failed:
        part_state = "failed"
    else:
        part_state = None
    enc = _encode
    detail_json = (
        f'{{"part":{part},"carrier":{enc(carrier)},"carrier_message_id":{enc(norm_id)},'
        f'"state":{enc(state)},"err":{"null" if err is None else enc(err)},'
        f'"stat":{"null" if stat is None else enc(stat)},'
        f'"carrier_message_id_raw":{"null" if raw is None else enc(raw)}}}'
    )
    # from here on as the store's step: forget a final one, write, append the event
    if part_state is not None:
        key = store._answered_key.pop((message_id, part), None)
        if key is not None:
            del answered[key]
    hot = conn.hot
    params = (state, err, at, _tick(conn, ts), detail_json, part_state, message_id, part)
    if not hot.run(_UPDATE_RECEIPT, params):
        write_step(hot, _UPDATE_RECEIPT, params)  # an earlier receipt goes to history first
    body = {
        "message_id": message_id,
        "part": part,
        "carrier": carrier,
        "carrier_message_id": norm_id,
        "state": state,
        "err": err,
        "stat": stat,
        "carrier_message_id_raw": raw,
    }
    cdef list appended = conn.appended
    seq = (appended[len(appended) - 1].seq if appended else conn.event_head) + 1
    hot.run(
        _INSERT_EVENT,
        (seq, at, ts, "receipt", f'{{"message_id":{enc(message_id)},{detail_json[1:]}'),
    )
    appended.append(_Event(seq, at, "receipt", body))
    return match
