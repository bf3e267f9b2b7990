# cython: language_level=3
"""Native SMPP 3.4 PDU codec: the Cython twin of ``gateway/smpp/_pure_codec.py``.

Same API and identical results: equal PDUs, equal bytes, equal errors raised after the same
checks in the same order (the decode rules are in the pure module's docstring). The plans are
derived at import from ``gateway.smpp.pdu``; anything there this module cannot handle raises
ImportError, so the codec front falls back to the pure twin.

Where the speed comes from:
- decoded PDUs are created with ``tp_alloc`` and their slots filled directly, at the offsets
  the classes' member descriptors give (what their tp_descr_set/tp_descr_get would do, minus
  the per-call type checks), bypassing the dataclass ``__init__``; encode reads them the same way;
- the frame is parsed through a raw pointer, with memchr for NULs; str values are made with
  PyUnicode_New and a copy of their octets;
- encode validates and writes in one pass into a stack buffer, reading 1-byte str data directly.
Everything unusual (str subclasses, non-Latin-1 text, errors) takes a slow path that mirrors
the pure codec line by line.
"""

import dataclasses
import types

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_Check, PyByteArray_GET_SIZE
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_Check,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.dict cimport PyDict_Contains, PyDict_SetItem
from cpython.long cimport (
    PyLong_AsLongLongAndOverflow,
    PyLong_Check,
    PyLong_FromLong,
    PyLong_FromUnsignedLong,
)
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject, Py_TYPE
from cpython.unicode cimport PyUnicode_CheckExact
from libc.string cimport memchr, memcpy

from gateway.smpp.constants import HEADER_LENGTH, RESPONSE_BIT
from gateway.smpp.constants import CommandStatus as S
from gateway.smpp.errors import PduDecodeError, PduEncodeError, describe
from gateway.smpp.pdu import (
    HEADER_FIELDS,
    PDU_CLASSES,
    TLV_SPECS,
    DistributionListDest,
    NetworkErrorCode,
    SmeDest,
    TlvKind,
    UnsuccessSme,
    WireKind,
    body_layout,
)

cdef extern from *:
    """
    #include "structmember.h"
    /* The offset of the object slot behind a member descriptor (what its tp_descr_get and
       tp_descr_set read and write), or -1 when it is not a plain writable object slot. */
    static Py_ssize_t gw_slot_offset(PyObject *descr) {
        PyMemberDef *member;
        if (!Py_IS_TYPE(descr, &PyMemberDescr_Type)) return -1;
        member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type != T_OBJECT_EX || (member->flags & READONLY)) return -1;
        return member->offset;
    }
    /* Borrowed; NULL when the slot is unset. */
    static CYTHON_INLINE PyObject *gw_slot_read(PyObject *obj, Py_ssize_t offset) {
        return *(PyObject **)((char *)obj + offset);
    }
    /* For a slot of a fresh object from tp_alloc, still NULL: stores a new reference to value,
       or (steal) takes over the caller's. */
    static CYTHON_INLINE void gw_slot_init(PyObject *obj, Py_ssize_t offset, PyObject *value) {
        Py_INCREF(value);
        *(PyObject **)((char *)obj + offset) = value;
    }
    static CYTHON_INLINE void gw_slot_steal(PyObject *obj, Py_ssize_t offset, PyObject *value) {
        *(PyObject **)((char *)obj + offset) = value;
    }
    /* The value of an exact int from 0 to 2**30 - 1, else -1 for the general path. */
    static CYTHON_INLINE long gw_small_uint(PyObject *v) {
        if (!PyLong_CheckExact(v)) return -1;
    #if PY_VERSION_HEX >= 0x030C0000
        if (!PyUnstable_Long_IsCompact((PyLongObject *)v)) return -1;
        Py_ssize_t x = PyUnstable_Long_CompactValue((PyLongObject *)v);
        return x < 0 || x > 0x3FFFFFFF ? -1 : (long)x;
    #else
        switch (Py_SIZE(v)) {
            case 0: return 0;
            case 1: return (long)((PyLongObject *)v)->ob_digit[0] & 0x3FFFFFFF;
            default: return -1;
        }
    #endif
    }
    /* The slot's value through its descriptor (this raises the AttributeError of unset slots). */
    static PyObject *gw_descr_get(PyObject *descr, PyObject *obj) {
        return Py_TYPE(descr)->tp_descr_get(descr, obj, (PyObject *)Py_TYPE(obj));
    }
    static CYTHON_INLINE PyObject *gw_alloc(PyObject *cls) {
        return ((PyTypeObject *)cls)->tp_alloc((PyTypeObject *)cls, 0);
    }
    /* The 1-byte (Latin-1) data of an exact str, or NULL when it needs the general path. */
    static CYTHON_INLINE const char *gw_latin1_data(PyObject *s, Py_ssize_t *n) {
    #if PY_VERSION_HEX < 0x030C0000
        if (!PyUnicode_IS_READY(s)) return NULL;
    #endif
        if (PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND) return NULL;
        *n = PyUnicode_GET_LENGTH(s);
        return (const char *)PyUnicode_1BYTE_DATA(s);
    }
    /* int, or an int subclass (bool, IntEnum...) that compares and hashes as int does. */
    static CYTHON_INLINE int gw_int_like(PyObject *v) {
        PyTypeObject *t = Py_TYPE(v);
        return t == &PyLong_Type || (PyLong_Check(v)
            && t->tp_richcompare == PyLong_Type.tp_richcompare
            && t->tp_hash == PyLong_Type.tp_hash);
    }
    /* PyUnicode_DecodeLatin1 for a str of Latin-1 octets, without its general machinery: the
       same ASCII or 1-byte representation, picked by whether any octet has its top bit set.
       Empty and 1-character strings come from CPython's caches. */
    static PyObject *gw_latin1_str(const unsigned char *s, Py_ssize_t n) {
        uint64_t word, bits = 0;
        Py_ssize_t i = 0;
        PyObject *str;
        if (n < 2) return PyUnicode_DecodeLatin1((const char *)s, n, NULL);
        for (; i + 8 <= n; i += 8) {
            memcpy(&word, s + i, 8);
            bits |= word;
        }
        for (; i < n; i++) bits |= s[i];
        str = PyUnicode_New(n, bits & 0x8080808080808080ULL ? 255 : 127);
        if (str != NULL) memcpy(PyUnicode_1BYTE_DATA(str), s, n);
        return str;
    }
    static CYTHON_INLINE unsigned long gw_be32(const unsigned char *p) {
        return ((unsigned long)p[0] << 24) | ((unsigned long)p[1] << 16)
            | ((unsigned long)p[2] << 8) | p[3];
    }
    static CYTHON_INLINE void gw_put32(unsigned char *p, unsigned long v) {
        p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16);
        p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
    }
    """
    Py_ssize_t gw_slot_offset(object descr)
    PyObject* gw_slot_read(object obj, Py_ssize_t offset)
    void gw_slot_init(object obj, Py_ssize_t offset, PyObject* value)
    void gw_slot_steal(object obj, Py_ssize_t offset, PyObject* value)
    long gw_small_uint(PyObject* v)
    object gw_descr_get(PyObject* descr, object obj)
    object gw_alloc(PyObject* cls)
    const char* gw_latin1_data(object s, Py_ssize_t* n)
    bint gw_int_like(object v)
    unsigned long gw_be32(const unsigned char* p)
    # Raw (new reference, NULL on error) so the hot loop can hand it to a slot as it is.
    PyObject* gw_latin1_str(const unsigned char* s, Py_ssize_t n)
    object gw_new_str "gw_latin1_str"(const unsigned char* s, Py_ssize_t n)
    void gw_put32(unsigned char* p, unsigned long v)


# Field kinds, copied from the enums at import so they can be C constants in the switch below.
cdef enum:
    K_CSTR = 1
    K_DATE = 2
    K_U8 = 3
    K_SM = 4
    K_DESTS = 5
    K_UNSUCCESS = 6
    T_U8 = 1
    T_U16 = 2
    T_U32 = 3
    T_CSTR = 4
    T_OCTETS = 5
    T_EMPTY = 6
    T_NETWORK_ERROR = 7
    N_PLAN_SLOTS = 1024  # (command_id & 0x1ff) plus 0x200 for responses
    N_TYPE_SLOTS = 64  # open-addressed type -> plan table for encode
    STACK_SIZE = 2048

cdef struct Slot:
    PyObject* descr  # the member descriptor
    Py_ssize_t offset  # where its value lives in the object

cdef struct FieldPlan:
    int kind
    Py_ssize_t size
    Py_ssize_t run  # for U8: how many one-octet integers start here (decoded together)
    PyObject* name  # str
    PyObject* status  # CommandStatus for decode errors
    Slot slot

cdef struct Plan:
    PyObject* cls
    unsigned long command_id
    Py_ssize_t nfields
    FieldPlan* fields
    Slot status
    Slot seq
    Slot tlvs

cdef struct TlvPlan:
    int kind
    Py_ssize_t max_length
    PyObject* tag  # the int key put in decoded dicts

cdef Plan* _plans_by_cid[N_PLAN_SLOTS]
cdef PyObject* _type_keys[N_TYPE_SLOTS]
cdef Plan* _type_plans[N_TYPE_SLOTS]
cdef unsigned char _tlv_index[65536]  # tag -> 1 + index into _tlv_plans, 0 for unknown tags
cdef TlvPlan _tlv_plans[256]

cdef PyObject* _small_ints[256]  # 0..255, so decoding an octet is an incref

_keep = []  # owns every object the C plans point to (the module is never unloaded)

_RINVCMDLEN = S.ESME_RINVCMDLEN
_RINVCMDID = S.ESME_RINVCMDID
_RINVDSTADR = S.ESME_RINVDSTADR
_RINVDLNAME = S.ESME_RINVDLNAME
_RINVDESTFLAG = S.ESME_RINVDESTFLAG
_RINVOPTPARSTREAM = S.ESME_RINVOPTPARSTREAM
_RINVPARLEN = S.ESME_RINVPARLEN
_RINVOPTPARAMVAL = S.ESME_RINVOPTPARAMVAL
_TLV_KINDS_PY = {tag: int(spec.kind) for tag, spec in TLV_SPECS.items()}
cdef str _EMPTY_STR = ""
cdef bytes _EMPTY_BYTES = b""
cdef object _ZERO = 0


cdef inline Plan* _plan_for_cid(unsigned long cid) noexcept:
    if cid & 0x7FFFFE00:
        return NULL
    return _plans_by_cid[(cid & 0x1FF) | ((cid >> 22) & 0x200)]


cdef inline Py_ssize_t _type_slot(PyObject* tp) noexcept:
    return (<size_t>tp >> 4) & (N_TYPE_SLOTS - 1)


cdef inline Plan* _plan_for_type(PyObject* tp) noexcept:
    cdef Py_ssize_t i = _type_slot(tp)
    while _type_keys[i] != NULL:
        if _type_keys[i] == tp:
            return _type_plans[i]
        i = (i + 1) & (N_TYPE_SLOTS - 1)
    return NULL


cdef inline object _uint(unsigned long value):
    return <object>_small_ints[value] if value < 256 else PyLong_FromUnsignedLong(value)


cdef inline object _get(Slot* slot, object pdu):
    cdef PyObject* value = gw_slot_read(pdu, slot.offset)
    if value == NULL:
        return gw_descr_get(slot.descr, pdu)  # raises the AttributeError of an unset slot
    return <object>value


cdef PyObject* _keep_ref(object obj):
    _keep.append(obj)
    return <PyObject*>obj


cdef int _slot(Slot* slot, object cls, str name) except -1:
    descr = getattr(cls, name)
    slot.offset = gw_slot_offset(descr) if type(descr) is types.MemberDescriptorType else -1
    if slot.offset < 0:
        raise ImportError(f"{cls.__name__}.{name} is not a writable object slot")
    slot.descr = _keep_ref(descr)
    return 0


cdef void _build_plans() except *:
    cdef Plan* plan
    cdef FieldPlan* f
    cdef Py_ssize_t i, slot
    cdef unsigned long cid
    for command_id, cls in PDU_CLASSES.items():
        cid = command_id
        layout = body_layout(cls)
        names = {field.name for field in dataclasses.fields(cls)}
        if names != {name for name, _ in layout} | set(HEADER_FIELDS):
            raise ImportError(f"{cls.__name__} has fields that are neither wire nor header fields")
        if cid & 0x7FFFFE00 or _plan_for_cid(cid) != NULL:
            raise ImportError(f"command_id 0x{cid:08x} does not fit the native plan table")
        plan = <Plan*>PyMem_Malloc(sizeof(Plan))
        f = <FieldPlan*>PyMem_Malloc(sizeof(FieldPlan) * (len(layout) + 1))
        if plan == NULL or f == NULL:
            raise MemoryError()
        plan.cls = _keep_ref(cls)
        plan.command_id = cid
        plan.nfields = len(layout)
        plan.fields = f
        _slot(&plan.status, cls, "command_status")
        _slot(&plan.seq, cls, "sequence_number")
        _slot(&plan.tlvs, cls, "tlvs")
        for i, (name, wire) in enumerate(layout):
            if not K_CSTR <= wire.kind <= K_UNSUCCESS:
                raise ImportError(f"{cls.__name__}.{name}: unknown wire kind {wire.kind!r}")
            f[i].kind = wire.kind
            f[i].size = wire.size
            f[i].name = _keep_ref(name)
            f[i].status = _keep_ref(wire.status)
            _slot(&f[i].slot, cls, name)
        for i in reversed(range(len(layout))):
            f[i].run = 0 if f[i].kind != K_U8 else 1 + (
                f[i + 1].run if i + 1 < len(layout) else 0
            )
        _plans_by_cid[(cid & 0x1FF) | ((cid >> 22) & 0x200)] = plan
        slot = _type_slot(<PyObject*>cls)
        while _type_keys[slot] != NULL:
            slot = (slot + 1) & (N_TYPE_SLOTS - 1)
        _type_keys[slot] = <PyObject*>cls
        _type_plans[slot] = plan
    for i in range(256):
        _small_ints[i] = _keep_ref(i)
    if len(TLV_SPECS) > 255:
        raise ImportError("too many TLV specs for the native plan table")
    for i, (tag, spec) in enumerate(TLV_SPECS.items()):
        if not T_U8 <= spec.kind <= T_NETWORK_ERROR or not 0 <= tag <= 0xFFFF:
            raise ImportError(f"TLV 0x{tag:04x}: unsupported spec {spec!r}")
        _tlv_plans[i].kind = spec.kind
        _tlv_plans[i].max_length = spec.max_length
        _tlv_plans[i].tag = _keep_ref(int(tag))
        _tlv_index[tag] = i + 1


if (WireKind.CSTR, WireKind.DATE, WireKind.U8, WireKind.SHORT_MESSAGE, WireKind.DEST_LIST,
        WireKind.UNSUCCESS_LIST) != (K_CSTR, K_DATE, K_U8, K_SM, K_DESTS, K_UNSUCCESS) or (
        TlvKind.U8, TlvKind.U16, TlvKind.U32, TlvKind.CSTR, TlvKind.OCTETS, TlvKind.EMPTY,
        TlvKind.NETWORK_ERROR) != (T_U8, T_U16, T_U32, T_CSTR, T_OCTETS, T_EMPTY, T_NETWORK_ERROR):
    raise ImportError("gateway.smpp.pdu changed its kind numbering; update the native codec")
if HEADER_LENGTH != 16 or RESPONSE_BIT != 0x80000000:
    raise ImportError("unexpected SMPP header constants")
_build_plans()


# ---------------------------------------------------------------------------------------------
# Decode


cdef struct Reader:
    const unsigned char* p
    Py_ssize_t pos
    Py_ssize_t end
    unsigned long cid
    unsigned long seq


cdef object _derr(Reader* r, object status, str reason):
    return PduDecodeError(status, reason, r.cid, r.seq)


cdef int _propagate() except -1:
    return -1  # the C call that failed has set the exception


cdef int _ends_before(Reader* r, PyObject* name) except -1:
    raise _derr(r, _RINVCMDLEN, f"body ends before {<object>name}")


cdef int _no_nul(Reader* r, PyObject* name, Py_ssize_t size, PyObject* status) except -1:
    if r.end < r.pos + size:
        raise _derr(r, _RINVCMDLEN, f"body ends inside {<object>name}")
    raise _derr(r, <object>status, f"{<object>name} has no NUL within {size} octets")


cdef int _bad_date(Reader* r, PyObject* name, Py_ssize_t size, PyObject* status) except -1:
    raise _derr(r, <object>status, f"{<object>name} must be empty or {size - 1} characters")


cdef inline int _read_u8(Reader* r, PyObject* name) except -1:
    if r.pos >= r.end:
        _ends_before(r, name)
    r.pos += 1
    return r.p[r.pos - 1]


cdef inline Py_ssize_t _cstr_length(Reader* r, Py_ssize_t size) noexcept:
    """The length of the C-Octet string at r.pos, or -1 if no NUL is within size octets."""
    cdef Py_ssize_t limit = r.pos + size
    cdef Py_ssize_t stop = limit if limit < r.end else r.end
    cdef const unsigned char* start = r.p + r.pos
    cdef const unsigned char* nul = <const unsigned char*>memchr(start, 0, stop - r.pos)
    return -1 if nul == NULL else nul - start


cdef object _read_cstr(Reader* r, PyObject* name, Py_ssize_t size, PyObject* status):
    cdef Py_ssize_t n = _cstr_length(r, size)
    if n < 0:
        _no_nul(r, name, size, status)
    r.pos += n + 1
    return gw_new_str(r.p + r.pos - n - 1, n)


cdef object _read_short_message(Reader* r, PyObject* name, Py_ssize_t size, PyObject* status):
    cdef Py_ssize_t length = _read_u8(r, <PyObject*>"sm_length")
    cdef Py_ssize_t pos = r.pos
    if length > size:
        raise _derr(r, <object>status, f"sm_length {length} is above {size}")
    if pos + length > r.end:
        raise _derr(r, _RINVCMDLEN, f"body ends inside {<object>name}")
    r.pos = pos + length
    return PyBytes_FromStringAndSize(<char*>r.p + pos, length)


cdef object _read_dest_list(Reader* r, Py_ssize_t size, PyObject* status):
    cdef int count = _read_u8(r, <PyObject*>"number_of_dests")
    cdef int flag, ton, npi
    if count > size:
        raise _derr(r, <object>status, f"number_of_dests {count} is above {size}")
    dests = []
    for _ in range(count):
        flag = _read_u8(r, <PyObject*>"dest_flag")
        if flag == 1:
            ton = _read_u8(r, <PyObject*>"dest_addr_ton")
            npi = _read_u8(r, <PyObject*>"dest_addr_npi")
            address = _read_cstr(r, <PyObject*>"destination_addr", 21, <PyObject*>_RINVDSTADR)
            dests.append(SmeDest(ton, npi, address))
        elif flag == 2:
            dests.append(
                DistributionListDest(_read_cstr(r, <PyObject*>"dl_name", 21, <PyObject*>_RINVDLNAME))
            )
        else:
            raise _derr(r, _RINVDESTFLAG, f"dest_flag {flag} is not 1 or 2")
    return dests


cdef object _read_unsuccess_list(Reader* r, Py_ssize_t size, PyObject* status):
    cdef int count = _read_u8(r, <PyObject*>"no_unsuccess")
    cdef int ton, npi
    if count > size:
        raise _derr(r, <object>status, f"no_unsuccess {count} is above {size}")
    smes = []
    for _ in range(count):
        ton = _read_u8(r, <PyObject*>"dest_addr_ton")
        npi = _read_u8(r, <PyObject*>"dest_addr_npi")
        address = _read_cstr(r, <PyObject*>"destination_addr", 21, <PyObject*>_RINVDSTADR)
        if r.pos + 4 > r.end:
            raise _derr(r, _RINVCMDLEN, "body ends inside error_status_code")
        r.pos += 4
        smes.append(UnsuccessSme(ton, npi, address, gw_be32(r.p + r.pos - 4)))
    return smes


cdef object _tlv_value(Reader* r, unsigned int tag, TlvPlan* spec, const unsigned char* raw,
                       Py_ssize_t length):
    cdef int kind = spec.kind
    cdef const unsigned char* nul
    if kind == T_U8:
        if length == 1:
            return <object>_small_ints[raw[0]]
    elif kind == T_CSTR:
        if length <= spec.max_length:
            nul = <const unsigned char*>memchr(raw, 0, length)
            if nul == NULL:
                if length < spec.max_length:  # the final NUL is missing, as some SMSCs send it
                    return gw_new_str(raw, length)
                raise _derr(r, _RINVPARLEN, f"TLV 0x{tag:04x} has a bad length {length}")
            if nul - raw == length - 1:
                return gw_new_str(raw, length - 1)
            raise _derr(r, _RINVOPTPARAMVAL, f"TLV 0x{tag:04x} has a NUL inside")
    elif kind == T_U16:
        if length == 2:
            return PyLong_FromLong((raw[0] << 8) | raw[1])
    elif kind == T_U32:
        if length == 4:
            return PyLong_FromUnsignedLong(gw_be32(raw))
    elif kind == T_OCTETS:
        if length <= spec.max_length:
            return PyBytes_FromStringAndSize(<char*>raw, length)
    elif kind == T_EMPTY:
        if length == 0:
            return True
    elif length == 3:  # T_NETWORK_ERROR
        return NetworkErrorCode(raw[0], (raw[1] << 8) | raw[2])
    raise _derr(r, _RINVPARLEN, f"TLV 0x{tag:04x} has a bad length {length}")


cdef object _read_tlvs(Reader* r):
    cdef const unsigned char* p = r.p
    cdef Py_ssize_t pos = r.pos
    cdef Py_ssize_t end = r.end
    cdef unsigned int tag, length
    cdef unsigned int seen[16]  # the first tags, to spot repeats without hashing
    cdef Py_ssize_t nseen = 0, i
    cdef unsigned char index
    cdef bint repeated
    tlvs = {}
    while pos < end:
        if end - pos < 4:
            raise _derr(r, _RINVOPTPARSTREAM, f"{end - pos} stray octets after the TLVs")
        tag = (p[pos] << 8) | p[pos + 1]
        length = (p[pos + 2] << 8) | p[pos + 3]
        pos += 4
        if pos + length > end:
            raise _derr(
                r, _RINVOPTPARSTREAM, f"TLV 0x{tag:04x} length {length} runs past the PDU"
            )
        index = _tlv_index[tag]
        key = <object>_tlv_plans[index - 1].tag if index else PyLong_FromLong(tag)
        if nseen < 16:
            repeated = False
            for i in range(nseen):
                if seen[i] == tag:
                    repeated = True
                    break
            seen[nseen] = tag
            nseen += 1
        else:
            repeated = PyDict_Contains(tlvs, key)
        if repeated:
            raise _derr(r, _RINVOPTPARSTREAM, f"TLV 0x{tag:04x} appears twice")
        if index:
            value = _tlv_value(r, tag, &_tlv_plans[index - 1], p + pos, length)
        else:
            value = PyBytes_FromStringAndSize(<char*>p + pos, length)
        PyDict_SetItem(tlvs, key, value)
        pos += length
    r.pos = pos
    return tlvs


def decode_pdu(frame):
    """Decode one whole PDU (header included). Raises PduDecodeError."""
    cdef Reader r
    cdef Plan* plan
    cdef FieldPlan* f
    cdef Py_ssize_t i, j, n, run, size
    cdef unsigned long length
    cdef int kind
    cdef PyObject* decoded
    if not PyBytes_CheckExact(frame):
        frame = bytes(memoryview(frame))  # any buffer; TypeError for anything else
    size = PyBytes_GET_SIZE(frame)
    if size < 16:
        raise PduDecodeError(_RINVCMDLEN, f"{size} octets is shorter than the header")
    r.p = <const unsigned char*>PyBytes_AS_STRING(frame)
    r.pos = 16
    r.end = size
    length = gw_be32(r.p)
    r.cid = gw_be32(r.p + 4)
    r.seq = gw_be32(r.p + 12)
    if length != <unsigned long>size:
        raise _derr(&r, _RINVCMDLEN, f"command_length {length} but {size} octets given")
    plan = _plan_for_cid(r.cid)
    if plan == NULL:
        raise _derr(&r, _RINVCMDID, "unknown command_id")
    pdu = gw_alloc(plan.cls)
    value = _uint(gw_be32(r.p + 8))
    gw_slot_init(pdu, plan.status.offset, <PyObject*>value)
    value = _uint(r.seq)
    gw_slot_init(pdu, plan.seq.offset, <PyObject*>value)
    if size == 16 and r.cid & 0x80000000:
        # An error response may omit its body: every field takes its default.
        for i in range(plan.nfields):
            f = &plan.fields[i]
            if f.kind == K_U8:
                value = _ZERO
            elif f.kind == K_CSTR or f.kind == K_DATE:
                value = _EMPTY_STR
            elif f.kind == K_SM:
                value = _EMPTY_BYTES
            else:
                value = []
            gw_slot_init(pdu, f.slot.offset, <PyObject*>value)
        value = {}
        gw_slot_init(pdu, plan.tlvs.offset, <PyObject*>value)
        return pdu
    i = 0
    while i < plan.nfields:
        f = &plan.fields[i]
        kind = f.kind
        if kind == K_U8:
            run = f.run
            if r.pos + run > r.end:  # the first field left without its octet
                _ends_before(&r, plan.fields[i + r.end - r.pos].name)
            for j in range(run):
                gw_slot_init(pdu, f[j].slot.offset, _small_ints[r.p[r.pos + j]])
            r.pos += run
            i += run
            continue
        if kind == K_CSTR or kind == K_DATE:
            n = _cstr_length(&r, f.size)
            if n < 0:
                _no_nul(&r, f.name, f.size, f.status)
            if kind == K_DATE and n != 0 and n != f.size - 1:
                _bad_date(&r, f.name, f.size, f.status)
            if n == 0:
                gw_slot_init(pdu, f.slot.offset, <PyObject*>_EMPTY_STR)
            else:
                decoded = gw_latin1_str(r.p + r.pos, n)
                if decoded == NULL:
                    _propagate()
                gw_slot_steal(pdu, f.slot.offset, decoded)
            r.pos += n + 1
        else:
            if kind == K_SM:
                value = _read_short_message(&r, f.name, f.size, f.status)
            elif kind == K_DESTS:
                value = _read_dest_list(&r, f.size, f.status)
            else:
                value = _read_unsuccess_list(&r, f.size, f.status)
            gw_slot_init(pdu, f.slot.offset, <PyObject*>value)
        i += 1
    value = _read_tlvs(&r)
    gw_slot_init(pdu, plan.tlvs.offset, <PyObject*>value)
    return pdu


# ---------------------------------------------------------------------------------------------
# Encode


cdef struct Buf:
    unsigned char* p
    Py_ssize_t n
    Py_ssize_t cap
    unsigned char* heap  # owned memory once the stack buffer is outgrown


cdef int _grow(Buf* b, Py_ssize_t extra) except -1:
    cdef Py_ssize_t cap = b.cap * 2
    if cap < b.n + extra:
        cap = b.n + extra
    cdef unsigned char* q = <unsigned char*>PyMem_Malloc(cap)
    if q == NULL:
        raise MemoryError()
    memcpy(q, b.p, b.n)
    PyMem_Free(b.heap)
    b.heap = q
    b.p = q
    b.cap = cap
    return 0


cdef inline int _put(Buf* b, const void* data, Py_ssize_t n) except -1:
    if b.n + n > b.cap:
        _grow(b, n)
    memcpy(b.p + b.n, data, n)
    b.n += n
    return 0


cdef inline int _put_byte(Buf* b, unsigned char value) except -1:
    if b.n >= b.cap:
        _grow(b, 1)
    b.p[b.n] = value
    b.n += 1
    return 0


cdef inline long long _int_value(object value, long long maximum) except -2:
    """``value`` when ``isinstance(value, int) and 0 <= value <= maximum``, else -1."""
    cdef int overflow
    cdef long long x = gw_small_uint(<PyObject*>value)
    if x >= 0:
        return x if x <= maximum else -1
    if not PyLong_Check(value):
        return -1
    if not gw_int_like(value) and not (0 <= value <= maximum):  # own comparison operators
        return -1
    x = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow or x < 0 or x > maximum:
        return -1
    return x


cdef int _put_u8(Buf* b, PyObject* name, object value) except -1:
    cdef long long x = _int_value(value, 0xFF)
    if x < 0:
        raise PduEncodeError(<object>name, f"must be an int from 0 to 255, not {describe(value)}")
    return _put_byte(b, <unsigned char>x)


cdef long long _u32_value(str name, object value) except -2:
    cdef long long x = _int_value(value, 0xFFFFFFFF)
    if x < 0:
        raise PduEncodeError(name, f"must be an int from 0 to 4294967295, not {describe(value)}")
    return x


cdef bytes _latin1_slow(object name, object value, Py_ssize_t size):
    """The pure codec's checks for a str that is not plain 1-byte data."""
    if not isinstance(value, str):
        raise PduEncodeError(name, f"must be a str, not {type(value).__name__}")
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        raise PduEncodeError(name, "has characters outside Latin-1") from None
    if len(raw) >= size:
        raise PduEncodeError(name, f"is longer than {size - 1} characters")
    if b"\0" in raw:
        raise PduEncodeError(name, "contains NUL")
    return bytes(raw)


cdef inline str _field_name(object name):
    """``name`` is a field name, or the int tag of a TLV (named only when there is an error)."""
    return name if type(name) is str else f"tlvs[0x{name:04x}]"


cdef Py_ssize_t _put_cstr(Buf* b, object name, object value, Py_ssize_t size) except -1:
    """Writes a C-Octet string and returns len(value). See _field_name for ``name``."""
    cdef Py_ssize_t n
    cdef const char* data = NULL
    if PyUnicode_CheckExact(value):
        data = gw_latin1_data(value, &n)
    if data == NULL:
        raw = _latin1_slow(_field_name(name), value, size)
        _put(b, PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))
        _put_byte(b, 0)
        return len(value)
    if n >= size:
        raise PduEncodeError(_field_name(name), f"is longer than {size - 1} characters")
    if memchr(data, 0, n) != NULL:
        raise PduEncodeError(_field_name(name), "contains NUL")
    if b.n + n + 1 > b.cap:
        _grow(b, n + 1)
    memcpy(b.p + b.n, data, n)
    b.p[b.n + n] = 0
    b.n += n + 1
    return n


cdef int _put_short_message(Buf* b, object name, object value, Py_ssize_t size) except -1:
    cdef Py_ssize_t n
    if PyBytes_CheckExact(value):
        n = PyBytes_GET_SIZE(value)
    elif PyBytes_Check(value) or PyByteArray_Check(value):
        n = len(value)
    else:
        raise PduEncodeError(name, f"must be bytes, not {type(value).__name__}")
    if n > size:
        raise PduEncodeError(name, f"is longer than {size} octets")
    _put_byte(b, <unsigned char>n)
    if PyBytes_Check(value):
        return _put(b, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))
    return _put(b, PyByteArray_AS_STRING(value), PyByteArray_GET_SIZE(value))


cdef int _put_count(Buf* b, object name, object value, Py_ssize_t size) except -1:
    if not isinstance(value, list):
        raise PduEncodeError(name, f"must be a list, not {type(value).__name__}")
    if len(value) > size:
        raise PduEncodeError(name, f"has more than {size} entries")
    return _put_byte(b, <unsigned char>len(value))


cdef int _put_dest_list(Buf* b, object name, object value, Py_ssize_t size) except -1:
    _put_count(b, name, value, size)
    for dest in value:
        if type(dest) is SmeDest:
            _put_byte(b, 1)
            _put_u8(b, <PyObject*>"dest_addr_ton", dest.ton)
            _put_u8(b, <PyObject*>"dest_addr_npi", dest.npi)
            _put_cstr(b, "destination_addr", dest.address, 21)
        elif type(dest) is DistributionListDest:
            _put_byte(b, 2)
            _put_cstr(b, "dl_name", dest.name, 21)
        else:
            raise PduEncodeError(name, "entries must be SmeDest or DistributionListDest")
    return 0


cdef int _put_unsuccess_list(Buf* b, object name, object value, Py_ssize_t size) except -1:
    cdef unsigned char code[4]
    _put_count(b, name, value, size)
    for sme in value:
        if type(sme) is not UnsuccessSme:
            raise PduEncodeError(name, "entries must be UnsuccessSme")
        _put_u8(b, <PyObject*>"dest_addr_ton", sme.ton)
        _put_u8(b, <PyObject*>"dest_addr_npi", sme.npi)
        _put_cstr(b, "destination_addr", sme.address, 21)
        gw_put32(code, <unsigned long>_u32_value("error_status_code", sme.error_status_code))
        _put(b, code, 4)
    return 0


cdef int _put_octets_tlv(Buf* b, object tag, object value, int kind, Py_ssize_t max_length
                         ) except -1:
    cdef Py_ssize_t n
    if PyBytes_CheckExact(value):
        n = PyBytes_GET_SIZE(value)
        if kind == T_OCTETS and n > max_length:
            raise PduEncodeError(f"tlvs[0x{tag:04x}]", f"is longer than {max_length} octets")
        return _put(b, PyBytes_AS_STRING(value), n)
    if not (PyBytes_Check(value) or PyByteArray_Check(value)):
        raise PduEncodeError(f"tlvs[0x{tag:04x}]", f"must be bytes, not {type(value).__name__}")
    if kind == T_OCTETS and len(value) > max_length:
        raise PduEncodeError(f"tlvs[0x{tag:04x}]", f"is longer than {max_length} octets")
    raw = bytes(value)
    return _put(b, PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))


cdef int _put_tlv_value(Buf* b, object tag, int kind, Py_ssize_t max_length, object value
                        ) except -1:
    cdef long long x
    cdef unsigned char raw[4]
    if kind == 0 or kind == T_OCTETS:  # 0: a tag outside TLV_SPECS, raw bytes
        return _put_octets_tlv(b, tag, value, kind, max_length)
    if kind == T_U8:
        x = _int_value(value, 0xFF)
        if x < 0:
            raise PduEncodeError(
                f"tlvs[0x{tag:04x}]", f"must be an int from 0 to 255, not {describe(value)}"
            )
        return _put_byte(b, <unsigned char>x)
    if kind == T_U16:
        x = _int_value(value, 0xFFFF)
        if x < 0:
            raise PduEncodeError(
                f"tlvs[0x{tag:04x}]", f"must be an int from 0 to 65535, not {describe(value)}"
            )
        raw[0] = <unsigned char>(x >> 8)
        raw[1] = <unsigned char>x
        return _put(b, raw, 2)
    if kind == T_U32:
        gw_put32(raw, <unsigned long>_u32_value(f"tlvs[0x{tag:04x}]", value))
        return _put(b, raw, 4)
    if kind == T_CSTR:
        _put_cstr(b, tag, value, max_length)
        return 0
    if kind == T_EMPTY:
        if value is not True:
            raise PduEncodeError(f"tlvs[0x{tag:04x}]", "a presence flag takes the value True")
        return 0
    if type(value) is not NetworkErrorCode:
        raise PduEncodeError(f"tlvs[0x{tag:04x}]", "must be a NetworkErrorCode")
    x = _int_value(value.network_type, 0xFF)
    if x < 0:
        raise PduEncodeError(f"tlvs[0x{tag:04x}]", "network_type must be an int from 0 to 255")
    raw[0] = <unsigned char>x
    x = _int_value(value.error_code, 0xFFFF)
    if x < 0:
        raise PduEncodeError(f"tlvs[0x{tag:04x}]", "error_code must be an int from 0 to 65535")
    raw[1] = <unsigned char>(x >> 8)
    raw[2] = <unsigned char>x
    return _put(b, raw, 3)


cdef int _put_tlvs(Buf* b, object tlvs) except -1:
    cdef long long tag_value
    cdef Py_ssize_t start, length
    cdef unsigned char index
    cdef int kind
    cdef Py_ssize_t max_length
    if not isinstance(tlvs, dict):
        raise PduEncodeError("tlvs", f"must be a dict, not {type(tlvs).__name__}")
    for tag, value in tlvs.items():
        tag_value = _int_value(tag, 0xFFFF)
        if tag_value < 0:
            raise PduEncodeError("tlvs", f"tag {describe(tag)} is not an int from 0 to 65535")
        if gw_int_like(tag):
            index = _tlv_index[tag_value]
            kind = _tlv_plans[index - 1].kind if index else 0
            max_length = _tlv_plans[index - 1].max_length if index else 0
        else:  # an int subclass with its own hash: look it up as the pure codec does
            kind = _TLV_KINDS_PY.get(tag, 0)
            max_length = TLV_SPECS[tag].max_length if kind else 0
        if b.n + 4 > b.cap:
            _grow(b, 4)
        b.p[b.n] = <unsigned char>(tag_value >> 8)
        b.p[b.n + 1] = <unsigned char>tag_value
        b.n += 4
        start = b.n
        _put_tlv_value(b, tag, kind, max_length, value)
        length = b.n - start
        if length > 0xFFFF:
            raise PduEncodeError(f"tlvs[0x{tag:04x}]", "value is longer than 65535 octets")
        b.p[start - 2] = <unsigned char>(length >> 8)
        b.p[start - 1] = <unsigned char>length
    return 0


cdef int _encode_into(Buf* b, Plan* plan, object pdu) except -1:
    cdef FieldPlan* f
    cdef Py_ssize_t i, n
    cdef long x
    cdef unsigned long status, seq
    cdef PyObject* borrowed
    for i in range(plan.nfields):
        f = &plan.fields[i]
        if f.kind == K_U8:  # the fast path: a plain int, read without taking a reference
            borrowed = gw_slot_read(pdu, f.slot.offset)
            x = gw_small_uint(borrowed) if borrowed != NULL else -1
            if 0 <= x <= 0xFF and b.n < b.cap:
                b.p[b.n] = <unsigned char>x
                b.n += 1
                continue
        value = _get(&f.slot, pdu)
        if f.kind == K_U8:
            _put_u8(b, f.name, value)
        elif f.kind == K_CSTR:
            _put_cstr(b, <object>f.name, value, f.size)
        elif f.kind == K_DATE:
            n = _put_cstr(b, <object>f.name, value, f.size)
            if n != 0 and n != f.size - 1:
                raise PduEncodeError(<object>f.name, f"must be empty or {f.size - 1} characters")
        elif f.kind == K_SM:
            _put_short_message(b, <object>f.name, value, f.size)
        elif f.kind == K_DESTS:
            _put_dest_list(b, <object>f.name, value, f.size)
        else:
            _put_unsuccess_list(b, <object>f.name, value, f.size)
    _put_tlvs(b, _get(&plan.tlvs, pdu))
    status = <unsigned long>_u32_value("command_status", _get(&plan.status, pdu))
    seq = <unsigned long>_u32_value("sequence_number", _get(&plan.seq, pdu))
    gw_put32(b.p, <unsigned long>b.n)
    gw_put32(b.p + 4, plan.command_id)
    gw_put32(b.p + 8, status)
    gw_put32(b.p + 12, seq)
    return 0


cdef object _not_a_pdu(object pdu):
    return PduEncodeError("command_id", f"{type(pdu).__name__} is not an SMPP 3.4 PDU class")


def encode_pdu(pdu):
    """Encode a PDU to its wire form. Raises PduEncodeError for fields that cannot be sent."""
    cdef unsigned char stack[STACK_SIZE]
    cdef Buf b
    cdef Plan* plan = _plan_for_type(<PyObject*>Py_TYPE(pdu))
    if plan == NULL:
        raise _not_a_pdu(pdu)
    b.p = stack
    b.n = 16
    b.cap = STACK_SIZE
    b.heap = NULL
    try:
        _encode_into(&b, plan, pdu)
        return PyBytes_FromStringAndSize(<char*>b.p, b.n)
    finally:
        PyMem_Free(b.heap)
