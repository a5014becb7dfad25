/*
 * Unit tests of the keyspace (db.c), with a clock the test moves by hand:
 * each case passes `now` itself, so expiry is tested without waiting.
 *
 *     ./test_db                every case
 *     ./test_db expire-cycle   one case
 */
#include <stdio.h>
#include <string.h>

#include "db.h"
#include "unit.h"

#define KEY(s) s, strlen(s)

static int set_get_del(void)
{
    struct db *db = db_new();
    size_t len = 99;
    CHECK(db_get(db, KEY("k"), &len, 1) == NULL && len == 99, "a missing key has no value");
    CHECK(db_set(db, KEY("k"), "v\0w", 3, DB_NO_EXPIRY, 1) == 0, "set");
    const char *v = db_get(db, KEY("k"), &len, 1);
    CHECK(v != NULL && len == 3 && memcmp(v, "v\0w", 3) == 0, "binary-safe value back");
    CHECK(db_set(db, KEY("k"), "", 0, DB_NO_EXPIRY, 1) == 0, "an empty value");
    CHECK(db_get(db, KEY("k"), &len, 1) != NULL && len == 0, "an empty value is still a value");
    CHECK(db_size(db) == 1, "one key, set twice");
    CHECK(db_del(db, KEY("k"), 1) == 1 && db_del(db, KEY("k"), 1) == 0, "deleted once");
    CHECK(db_size(db) == 0, "empty again");
    db_free(db);
    return 0;
}

static int lazy_expiry(void)
{
    struct db *db = db_new();
    size_t len;
    CHECK(db_set(db, KEY("k"), "v", 1, 1000, 1) == 0, "set with a deadline at 1000");
    CHECK(db_ttl(db, KEY("k"), 400) == 600, "600 ms left at 400");
    CHECK(db_get(db, KEY("k"), &len, 999) != NULL, "there at 999");
    CHECK(db_get(db, KEY("k"), &len, 1000) == NULL, "gone at its deadline");
    CHECK(db_size(db) == 0 && db_expiring(db) == 0, "the lookup deleted it");
    CHECK(db_ttl(db, KEY("k"), 1000) == -2, "TTL of a missing key");
    db_free(db);
    return 0;
}

static int keep_ttl_and_clear(void)
{
    struct db *db = db_new();
    CHECK(db_set(db, KEY("k"), "1", 1, 5000, 1) == 0, "set with a deadline");
    CHECK(db_set(db, KEY("k"), "2", 1, DB_KEEP_TTL, 2) == 0, "set keeping it");
    CHECK(db_ttl(db, KEY("k"), 2) == 4998, "kept");
    CHECK(db_set(db, KEY("k"), "3", 1, DB_NO_EXPIRY, 3) == 0, "set without one");
    CHECK(db_ttl(db, KEY("k"), 3) == -1 && db_expiring(db) == 0, "cleared");
    CHECK(db_expire_at(db, KEY("k"), 10, 20) == 1 && db_size(db) == 0, "a past deadline deletes");
    CHECK(db_expire_at(db, KEY("k"), 100, 20) == 0, "no such key");
    db_free(db);
    return 0;
}

/* 10,000 expired keys among 10,000 that live: each cycle looks at no more
 * than its budget, and deletes only expired keys. Like Redis's, a cycle
 * stops sampling once a sample finds a quarter or fewer expired, so the
 * share of expired keys among those with a deadline is driven down to about
 * a quarter, not to zero; when every key has expired, they all go. */
static int expire_cycle(void)
{
    struct db *db = db_new();
    char key[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof key, "key:%d", i);
        CHECK(db_set(db, KEY(key), "v", 1, i % 2 ? 100 : 1000000, 1) == 0, "set %s", key);
    }
    CHECK(db_expiring(db) == 20000, "20,000 with a deadline");
    size_t total = 0, deleted;
    for (int cycle = 0; cycle < 1000; cycle++) {
        deleted = db_expire_cycle(db, 200, 200);
        CHECK(deleted <= 200, "a cycle deleted %zu keys, over its budget of 200", deleted);
        total += deleted;
    }
    size_t left = 10000 - total;
    printf("# 1,000 cycles deleted %zu of 10,000 expired keys; %zu left among %zu with a deadline\n",
           total, left, db_expiring(db));
    CHECK(db_size(db) == 20000 - total, "deleted keys are gone");
    CHECK(left * 100 <= db_expiring(db) * 30, "%zu expired keys left, over 30%% of %zu", left, db_expiring(db));
    size_t len;
    for (int i = 0; i < 20000; i += 2) {
        snprintf(key, sizeof key, "key:%d", i);
        CHECK(db_get(db, KEY(key), &len, 200) != NULL, "%s, not expired, is still there", key);
    }
    CHECK(db_expire_cycle(db, 200, 0) == 0, "a budget of 0 does nothing");
    db_free(db);

    db = db_new();
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "key:%d", i);
        CHECK(db_set(db, KEY(key), "v", 1, 100, 1) == 0, "set %s", key);
    }
    for (int cycle = 0; cycle < 5; cycle++)
        CHECK(db_expire_cycle(db, 200, 200) == 200, "all expired: a full budget each cycle");
    CHECK(db_size(db) == 0 && db_expiring(db) == 0, "all gone in 5 cycles");
    db_free(db);
    return 0;
}

/* The table grows past many doublings and every key is still found. */
static int many_keys(void)
{
    struct db *db = db_new();
    char key[32], value[32];
    size_t len;
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        snprintf(value, sizeof value, "v%d", i);
        CHECK(db_set(db, KEY(key), KEY(value), DB_NO_EXPIRY, 1) == 0, "set %s", key);
    }
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        snprintf(value, sizeof value, "v%d", i);
        const char *v = db_get(db, KEY(key), &len, 1);
        CHECK(v != NULL && len == strlen(value) && memcmp(v, value, len) == 0, "%s found", key);
    }
    CHECK(db_size(db) == 100000, "100,000 keys");
    db_free(db);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct unit_case cases[] = {
        { "set-get-del", set_get_del },
        { "lazy-expiry", lazy_expiry },
        { "keep-ttl", keep_ttl_and_clear },
        { "expire-cycle", expire_cycle },
        { "many-keys", many_keys },
    };
    return unit_main(argc, argv, cases, sizeof cases / sizeof cases[0], NULL, NULL);
}
