/* docshift._bsonscan: validate BSON documents against a mapping's shape and say where each
 * value it reads lies, for the columnar load path (docshift/transform/columnar.py).
 *
 * scan(buf, start, ends, nslots, levels, arrays) walks the documents buf[start:ends[0]],
 * buf[ends[0]:ends[1]], ... element by element, checking every length, bound and terminator
 * as a BSON decoder does. A document passes (status 0) only when each element's key is one
 * its level names and its type one the entry accepts, no key repeats, and no string the
 * mapping reads holds a NUL; any other document gets a non-zero status and is left to the
 * row path, which decodes it with pymongo and loads or quarantines it.
 *
 * For a passing document, each read value is reported as (type, value start, value end),
 * absolute offsets in buf (type 0: absent). Elements of unnested arrays are appended to a
 * record table per array: (document index, type, value start, value end, then the
 * (type, start, end) of each field the element document's level reads).
 *
 * levels: tuple of levels; a level is a tuple of entries (key: bytes, kind, mask, slot,
 *         child); kind 0 value, 1 subdocument (child: its level), 2 unnested array
 *         (child: index in arrays), 3 ignored value; mask: accepted types, bit 1 << type.
 * arrays: tuple of (element mask, element level or -1, inner slots).
 * Returns (status bytes, slots bytes: int64 [n][nslots][3], tuple of record bytes).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_LEVELS 256
#define MAX_ARRAYS 64

enum { OK = 0, UNKNOWN_KEY = 1, WRONG_TYPE = 2, REPEATED = 3, MALFORMED = 4, NUL_IN_TEXT = 5 };

typedef struct {
    const char *key;
    Py_ssize_t klen;
    int kind;
    uint32_t mask;
    int slot;
    int child;
} Entry;

typedef struct {
    Entry *entries;
    int n;
} Level;

typedef struct {
    uint32_t mask;
    int level;
    int ninner;
    int64_t *data;
    Py_ssize_t len, cap; /* in int64 values */
} ArrayOut;

typedef struct {
    Level levels[MAX_LEVELS];
    int nlevels;
    ArrayOut arrays[MAX_ARRAYS];
    int narrays;
} Schema;

static int32_t rd32(const uint8_t *p) {
    return (int32_t)((uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
                     ((uint32_t)p[3] << 24));
}

/* Where the value starting at v (type t) ends, within [v, limit); -1: malformed. */
static Py_ssize_t value_end(const uint8_t *b, int t, Py_ssize_t v, Py_ssize_t limit) {
    Py_ssize_t n;
    switch (t) {
    case 0x01: case 0x09: case 0x11: case 0x12: n = 8; break;
    case 0x07: n = 12; break;
    case 0x08: /* a decoder refuses any byte but 0 and 1 */
        return (limit - v < 1 || b[v] > 1) ? -1 : v + 1;
    case 0x0A: case 0x06: case 0x7F: case 0xFF: n = 0; break;
    case 0x10: n = 4; break;
    case 0x13: n = 16; break;
    case 0x02: case 0x0D: case 0x0E: {
        if (limit - v < 5) return -1;
        int32_t len = rd32(b + v);
        if (len < 1 || len > limit - v - 4) return -1;
        if (b[v + 4 + len - 1] != 0) return -1;
        return v + 4 + len;
    }
    case 0x03: case 0x04: {
        if (limit - v < 5) return -1;
        int32_t len = rd32(b + v);
        if (len < 5 || len > limit - v) return -1;
        if (b[v + len - 1] != 0) return -1;
        return v + len;
    }
    default: return -1; /* not a type this path accepts anywhere */
    }
    return (limit - v < n) ? -1 : v + n;
}

static int grow(ArrayOut *a, Py_ssize_t need) {
    if (a->len + need <= a->cap) return 0;
    Py_ssize_t cap = a->cap ? a->cap * 2 : 4096;
    while (cap < a->len + need) cap *= 2;
    int64_t *d = PyMem_Realloc(a->data, (size_t)cap * sizeof(int64_t));
    if (!d) return -1;
    a->data = d;
    a->cap = cap;
    return 0;
}

static int walk(const Schema *s, const uint8_t *b, Py_ssize_t start, Py_ssize_t end,
                int level, int64_t *slots, int64_t doc, int depth);

/* The elements of the array value at [v, vend) (its length prefix checked). */
static int walk_array(const Schema *cs, const uint8_t *b, Py_ssize_t v, Py_ssize_t vend,
                      int ai, int64_t doc, int depth) {
    Schema *s = (Schema *)cs;
    ArrayOut *a = &s->arrays[ai];
    Py_ssize_t pos = v + 4, last = vend - 1;
    Py_ssize_t width = 4 + 3 * (Py_ssize_t)a->ninner;
    while (pos < last) {
        int t = b[pos];
        if (t == 0) return MALFORMED;
        const uint8_t *k = memchr(b + pos + 1, 0, (size_t)(last - pos - 1));
        if (!k) return MALFORMED;
        Py_ssize_t val = (k - b) + 1;
        Py_ssize_t ve = value_end(b, t, val, last);
        if (ve < 0) return MALFORMED;
        if (t >= 32 || !(a->mask & (1u << t))) return WRONG_TYPE;
        if (grow(a, width) < 0) return -1;
        int64_t *rec = a->data + a->len;
        memset(rec, 0, (size_t)width * sizeof(int64_t));
        rec[0] = doc;
        rec[1] = t;
        rec[2] = val;
        rec[3] = ve;
        if (t == 0x02 && memchr(b + val + 4, 0, (size_t)(ve - val - 5))) return NUL_IN_TEXT;
        a->len += width;
        if (t == 0x03 && a->level >= 0) {
            int r = walk(s, b, val, ve, a->level, rec + 4, doc, depth + 1);
            if (r) return r;
        }
        pos = ve;
    }
    return pos == last && b[last] == 0 ? OK : MALFORMED;
}

/* The elements of the document at [start, end) (its length prefix checked). */
static int walk(const Schema *s, const uint8_t *b, Py_ssize_t start, Py_ssize_t end,
                int level, int64_t *slots, int64_t doc, int depth) {
    if (depth > 100) return MALFORMED;
    const Level *lv = &s->levels[level];
    Py_ssize_t pos = start + 4, last = end - 1;
    while (pos < last) {
        int t = b[pos];
        if (t == 0) return MALFORMED;
        const uint8_t *k = memchr(b + pos + 1, 0, (size_t)(last - pos - 1));
        if (!k) return MALFORMED;
        Py_ssize_t klen = (k - b) - pos - 1;
        Py_ssize_t val = (k - b) + 1;
        Py_ssize_t ve = value_end(b, t, val, last);
        if (ve < 0) return MALFORMED;
        const Entry *e = NULL;
        for (int i = 0; i < lv->n; i++) {
            const Entry *c = &lv->entries[i];
            if (c->klen == klen && memcmp(c->key, b + pos + 1, (size_t)klen) == 0) {
                e = c;
                break;
            }
        }
        if (!e) return UNKNOWN_KEY;
        if (t >= 32 || !(e->mask & (1u << t))) return WRONG_TYPE;
        if (e->kind != 3) {
            int64_t *slot = slots + 3 * e->slot;
            if (slot[0]) return REPEATED;
            slot[0] = t;
            slot[1] = val;
            slot[2] = ve;
            if (e->kind == 0 && t == 0x02 &&
                memchr(b + val + 4, 0, (size_t)(ve - val - 5)))
                return NUL_IN_TEXT;
            if (e->kind == 1 && t == 0x03) {
                int r = walk(s, b, val, ve, e->child, slots, doc, depth + 1);
                if (r) return r;
            } else if (e->kind == 2 && t == 0x04) {
                int r = walk_array(s, b, val, ve, e->child, doc, depth + 1);
                if (r) return r;
            }
        }
        pos = ve;
    }
    return pos == last && b[last] == 0 ? OK : MALFORMED;
}

static void free_schema(Schema *s) {
    for (int i = 0; i < s->nlevels; i++) PyMem_Free(s->levels[i].entries);
    for (int i = 0; i < s->narrays; i++) PyMem_Free(s->arrays[i].data);
}

static int parse_schema(PyObject *levels, PyObject *arrays, Py_ssize_t nslots, Schema *s) {
    memset(s, 0, sizeof(*s));
    if (!PyTuple_Check(levels) || !PyTuple_Check(arrays) ||
        PyTuple_GET_SIZE(levels) > MAX_LEVELS || PyTuple_GET_SIZE(arrays) > MAX_ARRAYS ||
        PyTuple_GET_SIZE(levels) < 1) {
        PyErr_SetString(PyExc_ValueError, "bad schema");
        return -1;
    }
    s->narrays = (int)PyTuple_GET_SIZE(arrays);
    for (int i = 0; i < s->narrays; i++) {
        PyObject *a = PyTuple_GET_ITEM(arrays, i);
        unsigned long mask;
        int lvl, ninner;
        if (!PyArg_ParseTuple(a, "kii", &mask, &lvl, &ninner)) return -1;
        if (lvl >= PyTuple_GET_SIZE(levels) || ninner < 0) {
            PyErr_SetString(PyExc_ValueError, "bad array");
            return -1;
        }
        s->arrays[i].mask = (uint32_t)mask;
        s->arrays[i].level = lvl;
        s->arrays[i].ninner = ninner;
    }
    s->nlevels = (int)PyTuple_GET_SIZE(levels);
    for (int i = 0; i < s->nlevels; i++) {
        PyObject *lv = PyTuple_GET_ITEM(levels, i);
        if (!PyTuple_Check(lv)) {
            PyErr_SetString(PyExc_ValueError, "bad level");
            return -1;
        }
        Py_ssize_t n = PyTuple_GET_SIZE(lv);
        s->levels[i].entries = PyMem_Calloc((size_t)(n ? n : 1), sizeof(Entry));
        if (!s->levels[i].entries) {
            PyErr_NoMemory();
            return -1;
        }
        s->levels[i].n = (int)n;
        for (Py_ssize_t j = 0; j < n; j++) {
            Entry *e = &s->levels[i].entries[j];
            unsigned long mask;
            if (!PyArg_ParseTuple(PyTuple_GET_ITEM(lv, j), "y#ikii", &e->key, &e->klen,
                                  &e->kind, &mask, &e->slot, &e->child))
                return -1;
            e->mask = (uint32_t)mask & ~1u; /* type 0 ends a document, never a value */
            if (e->kind < 0 || e->kind > 3 || (e->kind != 3 && (e->slot < 0 ||
                                                                 e->slot >= nslots)) ||
                (e->kind == 1 && (e->child <= i || e->child >= s->nlevels)) ||
                (e->kind == 2 && (e->child < 0 || e->child >= s->narrays))) {
                PyErr_SetString(PyExc_ValueError, "bad entry");
                return -1;
            }
        }
    }
    for (int i = 0; i < s->narrays; i++) { /* inner slots of element levels */
        if (s->arrays[i].level >= 0) {
            const Level *lv = &s->levels[s->arrays[i].level];
            for (int j = 0; j < lv->n; j++)
                if (lv->entries[j].kind != 3 && lv->entries[j].slot >= s->arrays[i].ninner) {
                    PyErr_SetString(PyExc_ValueError, "bad inner slot");
                    return -1;
                }
        }
    }
    return 0;
}

static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer buf, ends;
    Py_ssize_t start, nslots;
    PyObject *levels, *arrays;
    if (!PyArg_ParseTuple(args, "y*ny*nOO", &buf, &start, &ends, &nslots, &levels, &arrays))
        return NULL;
    PyObject *result = NULL, *status = NULL, *slots = NULL, *records = NULL;
    Schema *s = PyMem_Calloc(1, sizeof(Schema));
    if (!s) {
        PyErr_NoMemory();
        goto done;
    }
    if (nslots < 1 || ends.len % 8 || ends.itemsize != 8 || parse_schema(levels, arrays,
                                                                         nslots, s) < 0) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "bad arguments");
        goto done;
    }
    Py_ssize_t n = ends.len / 8;
    const int64_t *e = ends.buf;
    const uint8_t *b = buf.buf;
    status = PyBytes_FromStringAndSize(NULL, n);
    slots = PyBytes_FromStringAndSize(NULL, n * nslots * 3 * 8);
    if (!status || !slots) goto done;
    uint8_t *st = (uint8_t *)PyBytes_AS_STRING(status);
    int64_t *sl = (int64_t *)PyBytes_AS_STRING(slots);
    memset(sl, 0, (size_t)(n * nslots * 3 * 8));
    Py_ssize_t pos = start;
    Py_ssize_t saved[MAX_ARRAYS];
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t end = (Py_ssize_t)e[i];
        int r;
        for (int a = 0; a < s->narrays; a++) saved[a] = s->arrays[a].len;
        if (pos < 0 || end > buf.len || end - pos < 5 || rd32(b + pos) != end - pos ||
            b[end - 1] != 0)
            r = MALFORMED;
        else
            r = walk(s, b, pos, end, 0, sl + i * nslots * 3, i, 0);
        if (r < 0) {
            PyErr_NoMemory();
            goto done;
        }
        if (r) { /* the row path takes it: nothing of it stays here */
            memset(sl + i * nslots * 3, 0, (size_t)(nslots * 3 * 8));
            for (int a = 0; a < s->narrays; a++) s->arrays[a].len = saved[a];
        }
        st[i] = (uint8_t)r;
        pos = end;
    }
    records = PyTuple_New(s->narrays);
    if (!records) goto done;
    for (int a = 0; a < s->narrays; a++) {
        PyObject *r = PyBytes_FromStringAndSize((const char *)s->arrays[a].data,
                                                s->arrays[a].len * 8);
        if (!r) goto done;
        PyTuple_SET_ITEM(records, a, r);
    }
    result = PyTuple_Pack(3, status, slots, records);
done:
    Py_XDECREF(status);
    Py_XDECREF(slots);
    Py_XDECREF(records);
    if (s) {
        free_schema(s);
        PyMem_Free(s);
    }
    PyBuffer_Release(&buf);
    PyBuffer_Release(&ends);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, "Validate BSON documents and locate their values."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "_bsonscan", .m_size = -1, .m_methods = methods,
};

PyMODINIT_FUNC PyInit__bsonscan(void) { return PyModule_Create(&module); }
