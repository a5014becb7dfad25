/*
 * db: the keyspace. A hash table of byte-string keys to byte-string values,
 * each with an optional deadline, and the two halves of expiry as Redis does
 * it:
 *
 *   lazily: every lookup first checks the key's deadline, and a key whose
 *           deadline has passed is deleted there and reported missing, so a
 *           client never sees an expired value;
 *   actively: db_expire_cycle, called from a periodic loop timer, samples
 *           keys that have a deadline and deletes the expired ones, so keys
 *           that nobody reads again do not hold memory forever. Its work per
 *           call is bounded, so one tick never stalls the clients.
 *
 * Times are the loop's clock, in milliseconds (loop_time). No I/O here.
 */
#ifndef DB_H
#define DB_H

#include <stddef.h>
#include <stdint.h>

/* A chained hash table, embedded: the structs it holds begin with a
 * dict_entry (the keyspace's keys here, the pub/sub channels in commands.c). */
struct dict_entry {
    struct dict_entry *next;
    uint64_t hash;
    char *key;
    size_t klen;
};

struct dict {
    struct dict_entry **buckets;
    size_t mask, count;
};

uint64_t dict_hash(const char *key, size_t len);
struct dict_entry *dict_find(const struct dict *d, const char *key, size_t klen);
int dict_insert(struct dict *d, struct dict_entry *e);     /* key and hash set; -1 ENOMEM */
void dict_remove(struct dict *d, struct dict_entry *e);
void dict_free(struct dict *d);                             /* the table only */

#define DB_NO_EXPIRY 0
#define DB_KEEP_TTL UINT64_MAX

struct db;

struct db *db_new(void);
void db_free(struct db *db);
size_t db_size(const struct db *db);
size_t db_expiring(const struct db *db);    /* keys with a deadline */

/* The value of key, or NULL if it is missing (or just expired). The pointer
 * is valid until the next change to the keyspace. */
const char *db_get(struct db *db, const char *key, size_t klen, size_t *vlen, uint64_t now);

/* Set key to value, with a deadline at `expire_at` (DB_NO_EXPIRY: none;
 * DB_KEEP_TTL: whatever it had). 0, or -1 when out of memory (nothing
 * changed then). */
int db_set(struct db *db, const char *key, size_t klen, const char *value, size_t vlen,
           uint64_t expire_at, uint64_t now);

int db_del(struct db *db, const char *key, size_t klen, uint64_t now);     /* 1 if it was there */

/* Give an existing key a deadline (one not after now deletes it). 1, or 0
 * if there is no such key. */
int db_expire_at(struct db *db, const char *key, size_t klen, uint64_t when, uint64_t now);

/* Milliseconds left: -2 no such key, -1 no deadline. */
long long db_ttl(struct db *db, const char *key, size_t klen, uint64_t now);

/* Look at up to `budget` keys with a deadline, picked at random, and delete
 * those past it. Like Redis, it goes on sampling only while a sample finds
 * many expired keys (over a quarter). Returns how many it deleted. */
size_t db_expire_cycle(struct db *db, uint64_t now, size_t budget);

#endif
