/*
 * map_results.c: see map_results.h.
 */
#include "map_results.h"

#include <stdlib.h>
#include <string.h>

static size_t keep(map_results *rs, const char *s, size_t n) {
    size_t at = rs->arena.len;
    strbuf_add(&rs->arena, s ? s : "", n);
    strbuf_addc(&rs->arena, 0);
    return at;
}

#define GROW(arr, n, cap) do { if ((n) >= (cap)) { (cap) = (cap) ? (cap) * 2 : 64; if ((cap) < (n) + 1) (cap) = (n) + 1; \
    (arr) = realloc((arr), (size_t)(cap) * sizeof *(arr)); if (!(arr)) abort(); } } while (0)

void map_results_add(map_results *rs, long long id, const map_result *r) {
    GROW(rs->ev, rs->nev, rs->cap_ev);
    int e = rs->nev++;
    rs->ev[e].id = id;
    rs->ev[e].status = r->status;
    rs->ev[e].reason = keep(rs, r->reason, strlen(r->reason));
    rs->ev[e].req0 = rs->nreq;
    rs->ev[e].nreq = r->nrequests;
    for (int i = 0; i < r->nrequests; i++) {
        const map_request *q = &r->requests[i];
        GROW(rs->req, rs->nreq, rs->cap_req);
        map_results_request *c = &rs->req[rs->nreq++];
        c->method = keep(rs, q->method, strlen(q->method));
        c->path = keep(rs, q->path, strlen(q->path));
        c->body = keep(rs, q->body, q->body_len);
        c->body_len = q->body_len;
        c->profile = keep(rs, q->profile, strlen(q->profile));
        c->scheduled = q->schedule_key != NULL;
        c->key = c->scheduled ? keep(rs, q->schedule_key, strlen(q->schedule_key)) : 0;
        c->due = c->scheduled ? keep(rs, q->due, strlen(q->due)) : 0;
    }
    rs->ev[e].can0 = rs->ncan;
    rs->ev[e].ncan = r->ncancels;
    for (int i = 0; i < r->ncancels; i++) {
        GROW(rs->can, rs->ncan, rs->cap_can);
        rs->can[rs->ncan++] = keep(rs, r->cancels[i], strlen(r->cancels[i]));
    }
    rs->ev[e].mem0 = rs->nmem;
    rs->ev[e].nmem = r->nmemory;
    for (int i = 0; i < r->nmemory; i++) {
        int cap = rs->cap_mem;
        GROW(rs->memk, rs->nmem, cap);
        GROW(rs->memv, rs->nmem, rs->cap_mem);
        rs->memk[rs->nmem] = keep(rs, r->memory_keys[i], strlen(r->memory_keys[i]));
        rs->memv[rs->nmem] = keep(rs, r->memory_values[i], strlen(r->memory_values[i]));
        rs->nmem++;
    }
}

void map_results_cut(map_results *rs, int from) {
    if (from >= rs->nev) return;
    rs->arena.len = rs->ev[from].reason;
    rs->nreq = rs->ev[from].req0;
    rs->ncan = rs->ev[from].can0;
    rs->nmem = rs->ev[from].mem0;
    rs->nev = from;
}

map_result map_results_get(const map_results *rs, int e, map_results_view *v) {
    const char *a = rs->arena.data;
    int nreq = rs->ev[e].nreq, ncan = rs->ev[e].ncan, nmem = rs->ev[e].nmem;
    GROW(v->reqs, nreq, v->cap_req);
    GROW(v->cans, ncan, v->cap_can);
    int cap = v->cap_mem;
    GROW(v->mk, nmem, cap);
    GROW(v->mv, nmem, v->cap_mem);
    for (int i = 0; i < nreq; i++) {
        const map_results_request *c = &rs->req[rs->ev[e].req0 + i];
        v->reqs[i] = (map_request){ .method = a + c->method, .path = a + c->path, .body = a + c->body,
                                    .body_len = c->body_len, .profile = a + c->profile,
                                    .schedule_key = c->scheduled ? a + c->key : NULL,
                                    .due = c->scheduled ? a + c->due : NULL };
    }
    for (int i = 0; i < ncan; i++) v->cans[i] = a + rs->can[rs->ev[e].can0 + i];
    for (int i = 0; i < nmem; i++) {
        v->mk[i] = a + rs->memk[rs->ev[e].mem0 + i];
        v->mv[i] = a + rs->memv[rs->ev[e].mem0 + i];
    }
    return (map_result){ .status = (map_status)rs->ev[e].status, .reason = a + rs->ev[e].reason,
                         .requests = v->reqs, .nrequests = nreq, .cancels = v->cans, .ncancels = ncan,
                         .memory_keys = v->mk, .memory_values = v->mv, .nmemory = nmem };
}

void map_results_view_free(map_results_view *v) {
    free(v->reqs);
    free(v->cans);
    free(v->mk);
    free(v->mv);
    *v = (map_results_view){0};
}

void map_results_free(map_results *rs) {
    strbuf_free(&rs->arena);
    free(rs->ev);
    free(rs->req);
    free(rs->can);
    free(rs->memk);
    free(rs->memv);
    *rs = (map_results){0};
}
