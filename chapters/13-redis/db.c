#include "db.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the hash table ---- */

/* FNV-1a, started from a seed chosen at start-up. A seed makes collisions
 * differ between runs; it does not stop a client who can watch timings from
 * crafting colliding keys (Redis uses SipHash with a secret key for that:
 * see the README's "what breaks"). */
static uint64_t hash_seed = 14695981039346656037ULL;

uint64_t dict_hash(const char *key, size_t len)
{
    uint64_t h = hash_seed;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 1099511628211ULL;
    }
    return h;
}

struct dict_entry *dict_find(const struct dict *d, const char *key, size_t klen)
{
    if (d->buckets == NULL)
        return NULL;
    uint64_t h = dict_hash(key, klen);
    for (struct dict_entry *e = d->buckets[h & d->mask]; e != NULL; e = e->next)
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return e;
    return NULL;
}

/* Double the table when it holds as many entries as buckets. All at once:
 * a pause proportional to the keyspace (Redis rehashes a little at each
 * operation instead; an exercise). */
static int grow(struct dict *d)
{
    size_t n = d->buckets ? (d->mask + 1) * 2 : 16;
    struct dict_entry **buckets = calloc(n, sizeof *buckets);
    if (buckets == NULL)
        return -1;
    for (size_t i = 0; d->buckets != NULL && i <= d->mask; i++) {
        struct dict_entry *e = d->buckets[i], *next;
        for (; e != NULL; e = next) {
            next = e->next;
            e->next = buckets[e->hash & (n - 1)];
            buckets[e->hash & (n - 1)] = e;
        }
    }
    free(d->buckets);
    d->buckets = buckets;
    d->mask = n - 1;
    return 0;
}

int dict_insert(struct dict *d, struct dict_entry *e)
{
    if ((d->buckets == NULL || d->count > d->mask) && grow(d) < 0 && d->buckets == NULL)
        return -1;              /* a failed grow with a table still works, only slower */
    e->next = d->buckets[e->hash & d->mask];
    d->buckets[e->hash & d->mask] = e;
    d->count++;
    return 0;
}

void dict_remove(struct dict *d, struct dict_entry *e)
{
    struct dict_entry **p = &d->buckets[e->hash & d->mask];
    while (*p != e)
        p = &(*p)->next;
    *p = e->next;
    d->count--;
}

void dict_free(struct dict *d)
{
    free(d->buckets);
    *d = (struct dict){ 0 };
}

/* ---- the keyspace ---- */

struct key {
    struct dict_entry e;        /* first: a dict_entry * is a struct key * */
    char *value;
    size_t vlen;
    uint64_t expire_at;         /* DB_NO_EXPIRY, or a loop time */
    size_t exp_index;           /* its place in db->expiring, if it has a deadline */
};

struct db {
    struct dict keys;
    struct key **expiring;      /* the keys with a deadline, to sample from */
    size_t nexpiring, expcap;
    uint64_t random;            /* xorshift state for the sampling */
};

struct db *db_new(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    hash_seed ^= (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^ (uint64_t)ts.tv_sec;
    struct db *db = calloc(1, sizeof *db);
    if (db != NULL)
        db->random = hash_seed | 1;
    return db;
}

size_t db_size(const struct db *db)
{
    return db->keys.count;
}

size_t db_expiring(const struct db *db)
{
    return db->nexpiring;
}

static int set_deadline(struct db *db, struct key *k, uint64_t when)
{
    if (when != DB_NO_EXPIRY && k->expire_at == DB_NO_EXPIRY) {
        if (db->nexpiring == db->expcap) {
            size_t cap = db->expcap ? db->expcap * 2 : 64;
            struct key **grown = realloc(db->expiring, cap * sizeof *grown);
            if (grown == NULL)
                return -1;
            db->expiring = grown;
            db->expcap = cap;
        }
        k->exp_index = db->nexpiring;
        db->expiring[db->nexpiring++] = k;
    } else if (when == DB_NO_EXPIRY && k->expire_at != DB_NO_EXPIRY) {
        struct key *last = db->expiring[--db->nexpiring];   /* swap the last into its place */
        db->expiring[k->exp_index] = last;
        last->exp_index = k->exp_index;
    }
    k->expire_at = when;
    return 0;
}

static void delete_key(struct db *db, struct key *k)
{
    set_deadline(db, k, DB_NO_EXPIRY);      /* cannot fail: it only removes */
    dict_remove(&db->keys, &k->e);
    free(k->value);
    free(k);
}

/* The lazy half of expiry: every lookup goes through here. */
static struct key *lookup(struct db *db, const char *key, size_t klen, uint64_t now)
{
    struct key *k = (struct key *)dict_find(&db->keys, key, klen);
    if (k != NULL && k->expire_at != DB_NO_EXPIRY && k->expire_at <= now) {
        delete_key(db, k);
        return NULL;
    }
    return k;
}

const char *db_get(struct db *db, const char *key, size_t klen, size_t *vlen, uint64_t now)
{
    struct key *k = lookup(db, key, klen, now);
    if (k == NULL)
        return NULL;
    *vlen = k->vlen;
    return k->value;
}

int db_set(struct db *db, const char *key, size_t klen, const char *value, size_t vlen,
           uint64_t expire_at, uint64_t now)
{
    char *copy = malloc(vlen ? vlen : 1);
    if (copy == NULL)
        return -1;
    memcpy(copy, value, vlen);
    struct key *k = lookup(db, key, klen, now);
    int created = k == NULL;
    if (created) {
        k = calloc(1, sizeof *k + klen);
        if (k == NULL) {
            free(copy);
            return -1;
        }
        k->e.key = (char *)(k + 1);
        memcpy(k->e.key, key, klen);
        k->e.klen = klen;
        k->e.hash = dict_hash(key, klen);
    }
    uint64_t when = expire_at == DB_KEEP_TTL ? k->expire_at : expire_at;
    if (set_deadline(db, k, when) < 0 || (created && dict_insert(&db->keys, &k->e) < 0)) {
        if (created) {
            set_deadline(db, k, DB_NO_EXPIRY);
            free(k);
        }
        free(copy);
        return -1;
    }
    free(k->value);
    k->value = copy;
    k->vlen = vlen;
    return 0;
}

int db_del(struct db *db, const char *key, size_t klen, uint64_t now)
{
    struct key *k = lookup(db, key, klen, now);
    if (k == NULL)
        return 0;
    delete_key(db, k);
    return 1;
}

int db_expire_at(struct db *db, const char *key, size_t klen, uint64_t when, uint64_t now)
{
    struct key *k = lookup(db, key, klen, now);
    if (k == NULL)
        return 0;
    if (when <= now)
        delete_key(db, k);
    else if (set_deadline(db, k, when) < 0)
        return -1;
    return 1;
}

long long db_ttl(struct db *db, const char *key, size_t klen, uint64_t now)
{
    struct key *k = lookup(db, key, klen, now);
    if (k == NULL)
        return -2;
    return k->expire_at == DB_NO_EXPIRY ? -1 : (long long)(k->expire_at - now);
}

static uint64_t next_random(struct db *db)
{
    db->random ^= db->random << 13;
    db->random ^= db->random >> 7;
    db->random ^= db->random << 17;
    return db->random;
}

/* The active half. Samples of 20, as Redis takes them: if more than a
 * quarter of a sample had expired, many more probably have, so sample again
 * (within the budget); otherwise stop, the rest can wait for the next tick. */
size_t db_expire_cycle(struct db *db, uint64_t now, size_t budget)
{
    size_t deleted = 0;
    while (budget > 0 && db->nexpiring > 0) {
        size_t sample = budget < 20 ? budget : 20, expired = 0;
        for (size_t i = 0; i < sample && db->nexpiring > 0; i++) {
            struct key *k = db->expiring[next_random(db) % db->nexpiring];
            if (k->expire_at <= now) {
                delete_key(db, k);
                expired++;
            }
        }
        budget -= sample;
        deleted += expired;
        if (expired * 4 <= sample)
            break;
    }
    return deleted;
}

void db_free(struct db *db)
{
    if (db == NULL)
        return;
    for (size_t i = 0; db->keys.buckets != NULL && i <= db->keys.mask; i++) {
        struct dict_entry *e = db->keys.buckets[i], *next;
        for (; e != NULL; e = next) {
            next = e->next;
            free(((struct key *)e)->value);
            free(e);
        }
    }
    dict_free(&db->keys);
    free(db->expiring);
    free(db);
}
