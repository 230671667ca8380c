
/*
 * Self-test of ngx_http_controlplane_crypto.c, in TAP: RFC 6238 and
 * RFC 4226 vectors, password hashing (a known answer, round trips, wrong
 * passwords, malformed and hostile stored hashes), sealing (round trips,
 * tampering), key files, RFC 4648 base32 vectors, and the scrypt timing.
 *
 *     crypto_selftest [KEYFILE]
 *
 * KEYFILE (e.g. build/pki/totp.key) is also loaded if given.  Exits 1 if
 * any test fails.
 */


#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ngx_http_controlplane_crypto.h"


static void ok(int cond, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static double now_ms(void);
static const char *printable(const char *s);
static int write_file(const char *path, const char *data, size_t len);
static void test_totp(void);
static void test_password(void);
static void test_hostile_hashes(void);
static void test_seal(void);
static void test_key_load(const char *keyfile);
static void test_base32(void);
static void test_random(void);


static int  tests;
static int  failed;


static const unsigned char  rfc_secret[] = "12345678901234567890";



static void
ok(int cond, const char *fmt, ...)
{
    va_list  args;

    tests++;

    if (!cond) {
        failed++;
    }

    printf("%s %d - ", cond ? "ok" : "not ok", tests);

    va_start(args, fmt);
    vprintf(fmt, args);
    va_end(args);

    printf("\n");
}


static double
now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}


/* for TAP descriptions: control characters as "\\xHH" */

static const char *
printable(const char *s)
{
    size_t       n;
    static char  buf[512];

    for (n = 0; *s && n + 5 < sizeof(buf); s++) {
        if ((unsigned char) *s < 0x20 || *s == 0x7f) {
            n += snprintf(buf + n, sizeof(buf) - n, "\\x%02x",
                          (unsigned char) *s);

        } else {
            buf[n++] = *s;
        }
    }

    buf[n] = '\0';

    return buf;
}


static int
write_file(const char *path, const char *data, size_t len)
{
    FILE  *f;

    f = fopen(path, "w");
    if (f == NULL) {
        return -1;
    }

    if (fwrite(data, 1, len, f) != len) {
        fclose(f);
        return -1;
    }

    return fclose(f);
}


static void
test_totp(void)
{
    int          i, code;
    char         buf[16];
    int64_t      step;
    unsigned     k;

    /* RFC 6238, appendix B, SHA-1: the last 6 of the 8 digits */

    static const struct {
        time_t       t;
        const char  *code8;
    } vectors[] = {
        { 59, "94287082" },
        { 1111111109, "07081804" },
        { 1111111111, "14050471" },
        { 1234567890, "89005924" },
        { 2000000000, "69279037" },
        { (time_t) 20000000000LL, "65353130" },
    };

    /* RFC 4226, appendix D: HOTP for the counters 0..9 */

    static const char  *hotp[] = {
        "755224", "287082", "359152", "969429", "338314",
        "254676", "287922", "162583", "399871", "520489"
    };

    for (k = 0; k < sizeof(vectors) / sizeof(vectors[0]); k++) {
        code = cp_totp_code(rfc_secret, 20, (uint64_t) vectors[k].t / 30);
        snprintf(buf, sizeof(buf), "%06d", code);

        ok(strcmp(buf, vectors[k].code8 + 2) == 0,
           "RFC 6238 T=%lld: %s (expected %s)",
           (long long) vectors[k].t, buf, vectors[k].code8 + 2);

        step = cp_totp_check(rfc_secret, 20, vectors[k].t,
                             vectors[k].code8 + 2, 6);

        ok(step == (int64_t) vectors[k].t / 30,
           "RFC 6238 T=%lld: check returns step %lld",
           (long long) vectors[k].t, (long long) step);
    }

    for (i = 0; i < 10; i++) {
        code = cp_totp_code(rfc_secret, 20, (uint64_t) i);
        snprintf(buf, sizeof(buf), "%06d", code);

        ok(strcmp(buf, hotp[i]) == 0, "RFC 4226 counter %d: %s", i, buf);
    }

    /* the window: now/30 - 1 .. now/30 + 1 */

    for (i = -2; i <= 2; i++) {
        snprintf(buf, sizeof(buf), "%06d",
                 cp_totp_code(rfc_secret, 20, (uint64_t) (37037037 + i)));

        step = cp_totp_check(rfc_secret, 20, (time_t) 37037037 * 30 + 29,
                             buf, 6);

        if (i >= -1 && i <= 1) {
            ok(step == 37037037 + i, "window: step %+d accepted", i);

        } else {
            ok(step == -1, "window: step %+d refused", i);
        }
    }

    /* the code of step 0 at time 0..29; there is no step -1 */

    snprintf(buf, sizeof(buf), "%06d", cp_totp_code(rfc_secret, 20, 0));
    ok(cp_totp_check(rfc_secret, 20, 0, buf, 6) == 0, "step 0 at T=0");
    ok(cp_totp_check(rfc_secret, 20, 10, buf, 6) == 0, "step 0 at T=10");
    ok(cp_totp_check(rfc_secret, 20, -1, buf, 6) == -1, "negative time");

    /* only 6 ASCII digits */

    ok(cp_totp_check(rfc_secret, 20, 59, "287082", 6) == 1,
       "6-digit code of T=59");
    ok(cp_totp_check(rfc_secret, 20, 59, "28708", 5) == -1, "5 digits");
    ok(cp_totp_check(rfc_secret, 20, 59, "2870820", 7) == -1, "7 digits");
    ok(cp_totp_check(rfc_secret, 20, 59, "94287082", 8) == -1,
       "8-digit code");
    ok(cp_totp_check(rfc_secret, 20, 59, "28708a", 6) == -1, "a letter");
    ok(cp_totp_check(rfc_secret, 20, 59, " 87082", 6) == -1, "a space");
    ok(cp_totp_check(rfc_secret, 20, 59, "+87082", 6) == -1, "a sign");
    ok(cp_totp_check(rfc_secret, 20, 59, "\xd9\xa2" "7082", 6) == -1,
       "non-ASCII digit");
    ok(cp_totp_check(rfc_secret, 20, 59, NULL, 6) == -1, "NULL code");
    ok(cp_totp_check(rfc_secret, 0, 59, "287082", 6) == -1,
       "empty secret refused");
    ok(cp_totp_check(rfc_secret, 19, 59, "287082", 6) == -1,
       "other secret does not match");
}


static void
test_password(void)
{
    int      i, rc;
    char     h1[CP_PASSWORD_HASH_MAX], h2[CP_PASSWORD_HASH_MAX];
    char    *big;
    double   t0, hash_ms, verify_ms;

    static const char  pw[] = "correct horse battery staple";

    /* known answer, computed with Python's hashlib.scrypt */

    static const char  *kat[] = {
        "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw"
        "$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$scrypt$ln=15,r=8,p=1$AAECAwQFBgcICQoLDA0ODw"
        "$eo40JB24mNWRdcaWU4xBdGepdf/laQaEJfFhiNMVnFg",
        "$scrypt$ln=11,r=4,p=2$AAECAwQFBgcICQoLDA0ODw"
        "$5Vt2qtF4kOa7SRYUgPpZxZBKD4jCz5R6L+jI6KSJE5U",
    };

    for (i = 0; i < 3; i++) {
        ok(cp_password_verify(pw, sizeof(pw) - 1, kat[i]) == 1,
           "known answer %d verifies", i);
        ok(cp_password_verify(pw, sizeof(pw) - 2, kat[i]) == 0,
           "known answer %d, wrong password", i);
    }

    /* round trips, with the timing */

    hash_ms = 0;
    verify_ms = 0;

    for (i = 0; i < 5; i++) {
        t0 = now_ms();
        rc = cp_password_hash(pw, sizeof(pw) - 1, h1, sizeof(h1));
        hash_ms += now_ms() - t0;

        if (rc != 0) {
            break;
        }

        t0 = now_ms();
        rc = cp_password_verify(pw, sizeof(pw) - 1, h1);
        verify_ms += now_ms() - t0;

        if (rc != 1) {
            break;
        }
    }

    ok(i == 5, "hash and verify 5 times");

    printf("# scrypt ln=15 r=8 p=1: hash %.1f ms, verify %.1f ms "
           "(mean of 5)\n", hash_ms / 5, verify_ms / 5);

    ok(strncmp(h1, "$scrypt$ln=15,r=8,p=1$", 22) == 0
       && strlen(h1) == 22 + 22 + 1 + 43,
       "format: %s", h1);

    ok(cp_password_hash(pw, sizeof(pw) - 1, h2, sizeof(h2)) == 0
       && strcmp(h1, h2) != 0, "random salt: two hashes differ");

    ok(cp_password_verify("correct horse battery stapla", sizeof(pw) - 1, h1)
       == 0, "wrong password");
    ok(cp_password_verify(pw, sizeof(pw) - 2, h1) == 0, "truncated password");
    ok(cp_password_verify("", 0, h1) == 0, "empty password against hash");

    ok(cp_password_hash(pw, sizeof(pw) - 1, h2, 88) == -1,
       "output buffer one byte short");
    ok(cp_password_hash(pw, sizeof(pw) - 1, h2, 89) == 0
       && cp_password_verify(pw, sizeof(pw) - 1, h2) == 1,
       "output buffer exactly long enough");

    ok(cp_password_hash("", 0, h2, sizeof(h2)) == 0
       && cp_password_verify("", 0, h2) == 1
       && cp_password_verify("x", 1, h2) == 0,
       "empty password round trip");

    /* binary and length: the length counts, not a NUL */

    ok(cp_password_hash("a\0b", 3, h2, sizeof(h2)) == 0
       && cp_password_verify("a\0b", 3, h2) == 1
       && cp_password_verify("a\0c", 3, h2) == 0
       && cp_password_verify("a", 1, h2) == 0,
       "embedded NUL is part of the password");

    big = malloc(CP_PASSWORD_MAX + 1);
    if (big == NULL) {
        ok(0, "malloc");
        return;
    }

    memset(big, 'x', CP_PASSWORD_MAX + 1);

    ok(cp_password_hash(big, CP_PASSWORD_MAX, h2, sizeof(h2)) == 0
       && cp_password_verify(big, CP_PASSWORD_MAX, h2) == 1,
       "CP_PASSWORD_MAX bytes accepted");
    ok(cp_password_hash(big, CP_PASSWORD_MAX + 1, h2, sizeof(h2)) == -1,
       "CP_PASSWORD_MAX + 1 bytes: hash refused");
    ok(cp_password_verify(big, CP_PASSWORD_MAX + 1, h2) == -1,
       "CP_PASSWORD_MAX + 1 bytes: verify refused");

    free(big);
}


static void
test_hostile_hashes(void)
{
    int       rc;
    char      longer[400];
    double    t0, ms;
    unsigned  i;

#define SALT "AAECAwQFBgcICQoLDA0ODw"
#define HASH "mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU"

    static const char  *bad[] = {
        "",
        "$",
        "$scrypt$",
        "scrypt$ln=10,r=8,p=1$" SALT "$" HASH,
        "$SCRYPT$ln=10,r=8,p=1$" SALT "$" HASH,
        "$argon2id$v=19$m=65536,t=3,p=4$" SALT "$" HASH,
        "$scrypt$ln=9,r=8,p=1$" SALT "$" HASH,
        "$scrypt$ln=21,r=8,p=1$" SALT "$" HASH,
        "$scrypt$ln=63,r=8,p=1$" SALT "$" HASH,
        "$scrypt$ln=64,r=8,p=1$" SALT "$" HASH,
        "$scrypt$ln=4294967306,r=8,p=1$" SALT "$" HASH,
        "$scrypt$ln=99999999999999999999,r=8,p=1$" SALT "$" HASH,
        "$scrypt$ln=010,r=8,p=1$" SALT "$" HASH,
        "$scrypt$ln=+10,r=8,p=1$" SALT "$" HASH,
        "$scrypt$ln=-10,r=8,p=1$" SALT "$" HASH,
        "$scrypt$ln= 10,r=8,p=1$" SALT "$" HASH,
        "$scrypt$ln=,r=8,p=1$" SALT "$" HASH,
        "$scrypt$ln=10,r=0,p=1$" SALT "$" HASH,
        "$scrypt$ln=10,r=17,p=1$" SALT "$" HASH,
        "$scrypt$ln=10,r=8,p=0$" SALT "$" HASH,
        "$scrypt$ln=10,r=8,p=5$" SALT "$" HASH,
        "$scrypt$ln=10,p=1,r=8$" SALT "$" HASH,
        "$scrypt$ln=10,r=8$" SALT "$" HASH,
        "$scrypt$ln=10,r=8,p=1,x=1$" SALT "$" HASH,
        "$scrypt$ln=10;r=8;p=1$" SALT "$" HASH,
        "$scrypt$n=1024,r=8,p=1$" SALT "$" HASH,
        /* within each bound, but too much memory or time together */
        "$scrypt$ln=20,r=16,p=4$" SALT "$" HASH,
        "$scrypt$ln=20,r=8,p=1$" SALT "$" HASH,
        "$scrypt$ln=18,r=8,p=1$" SALT "$" HASH,
        "$scrypt$ln=17,r=8,p=2$" SALT "$" HASH,
        "$scrypt$ln=17,r=16,p=1$" SALT "$" HASH,
        /* salt and hash */
        "$scrypt$ln=10,r=8,p=1$" SALT,
        "$scrypt$ln=10,r=8,p=1$" SALT "$",
        "$scrypt$ln=10,r=8,p=1$$" HASH,
        "$scrypt$ln=10,r=8,p=1$" SALT "==$" HASH,
        "$scrypt$ln=10,r=8,p=1$" SALT "$" HASH "=",
        "$scrypt$ln=10,r=8,p=1$" "AAECAwQFBgcICQoLDA0OD" "$" HASH,
        "$scrypt$ln=10,r=8,p=1$" "AAECAwQFBgcICQoLDA0ODwA" "$" HASH,
        "$scrypt$ln=10,r=8,p=1$" "AAECAwQFBgcICQoLDA0ODx" "$" HASH,
        "$scrypt$ln=10,r=8,p=1$" "AAECAwQFBgcICQoLDA0OD-" "$" HASH,
        "$scrypt$ln=10,r=8,p=1$" "AAECAwQFBgcICQoLDA0OD_" "$" HASH,
        "$scrypt$ln=10,r=8,p=1$" SALT "$"
            "mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlR",
        "$scrypt$ln=10,r=8,p=1$" SALT "$"
            "mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRV",
        "$scrypt$ln=10,r=8,p=1$" SALT "$" HASH "$",
        "$scrypt$ln=10,r=8,p=1$" SALT "$" HASH "x",
        "$scrypt$ln=10,r=8,p=1$" SALT "$" HASH " ",
        "$scrypt$ln=10,r=8,p=1$" SALT "$" HASH "\n",
        "$scrypt$ln=10,r=8,p=1$" SALT "$$" HASH,
        " $scrypt$ln=10,r=8,p=1$" SALT "$" HASH,
    };

    t0 = now_ms();

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rc = cp_password_verify("correct horse battery staple", 28, bad[i]);
        ok(rc == -1, "malformed hash %u refused: \"%s\"", i,
           printable(bad[i]));
    }

    ms = now_ms() - t0;

    ok(ms < 100, "%u malformed hashes refused in %.2f ms (no scrypt run)",
       i, ms);

    /* longer than CP_PASSWORD_HASH_MAX, and without a NUL within it */

    snprintf(longer, sizeof(longer), "$scrypt$ln=10,r=8,p=1$" SALT "$" HASH
             "%0*d", 300, 0);
    ok(cp_password_verify("x", 1, longer) == -1, "over-long hash refused");

    ok(cp_password_verify("x", 1, NULL) == -1, "NULL hash refused");

    /* the bounds themselves are accepted */

    ok(cp_password_verify("correct horse battery staple", 28,
                          "$scrypt$ln=10,r=1,p=1$" SALT "$" HASH) == 0,
       "ln=10,r=1,p=1 is well-formed (and does not match)");
    ok(cp_password_verify("correct horse battery staple", 28,
                          "$scrypt$ln=10,r=16,p=4$" SALT "$" HASH) == 0,
       "ln=10,r=16,p=4 is well-formed (and does not match)");

#undef SALT
#undef HASH
}


static void
test_seal(void)
{
    size_t          i, n, m;
    unsigned char   key[CP_KEY_LEN], key2[CP_KEY_LEN];
    unsigned char   secret[CP_TOTP_SECRET_LEN], big[80];
    unsigned char   sealed[CP_SEALED_MAX], sealed2[CP_SEALED_MAX],
                    opened[CP_SEALED_MAX], copy[CP_SEALED_MAX];
    int             all, rc;

    ok(cp_random(key, sizeof(key)) == 0
       && cp_random(key2, sizeof(key2)) == 0
       && cp_random(secret, sizeof(secret)) == 0, "random key and secret");

    n = 0;
    rc = cp_secret_seal(key, secret, sizeof(secret), sealed, &n);

    ok(rc == 0 && n == 12 + sizeof(secret) + 16, "seal: %zu bytes", n);

    ok(cp_secret_open(key, sealed, n, opened, &m) == 0
       && m == sizeof(secret) && memcmp(opened, secret, m) == 0,
       "open: round trip");

    ok(cp_secret_seal(key, secret, sizeof(secret), sealed2, &m) == 0
       && m == n && memcmp(sealed, sealed2, 12) != 0
       && memcmp(sealed + 12, sealed2 + 12, n - 12) != 0,
       "random nonce: two seals differ");

    ok(cp_secret_open(key2, sealed, n, opened, &m) == -1, "wrong key");

    /* flip every bit of every byte: nonce, ciphertext and tag */

    all = 1;

    for (i = 0; i < n * 8; i++) {
        memcpy(copy, sealed, n);
        copy[i / 8] ^= (unsigned char) (1u << (i % 8));

        if (cp_secret_open(key, copy, n, opened, &m) != -1) {
            all = 0;
        }
    }

    ok(all, "every single-bit change refused (%zu)", n * 8);

    ok(cp_secret_open(key, sealed, n - 1, opened, &m) == -1, "truncated");
    ok(cp_secret_open(key, sealed, 27, opened, &m) == -1, "too short");

    memcpy(copy, sealed, n);
    copy[n] = 0;
    ok(cp_secret_open(key, copy, n + 1, opened, &m) == -1, "appended byte");

    ok(cp_secret_open(key, sealed, CP_SEALED_MAX + 1, opened, &m) == -1,
       "longer than CP_SEALED_MAX");

    ok(cp_secret_seal(key, NULL, 0, sealed2, &n) == 0 && n == 28
       && cp_secret_open(key, sealed2, n, opened, &m) == 0 && m == 0,
       "empty plaintext round trip");

    memset(big, 0xa5, sizeof(big));

    ok(cp_secret_seal(key, big, 64, sealed2, &n) == 0 && n == CP_SEALED_MAX
       && cp_secret_open(key, sealed2, n, opened, &m) == 0 && m == 64
       && memcmp(opened, big, 64) == 0, "64 bytes round trip");

    ok(cp_secret_seal(key, big, 65, sealed2, &n) == -1,
       "65 bytes refused");

    /* sealed with another AAD (none): refused */
}


static void
test_key_load(const char *keyfile)
{
    char           path[] = "/tmp/cp_selftest_keyXXXXXX";
    int            fd;
    unsigned       i;
    unsigned char  key[CP_KEY_LEN], expect[CP_KEY_LEN];

#define hex "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define HEX "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"

    static const struct {
        const char  *data;
        int          rc;
        const char  *name;
    } files[] = {
        { hex, 0, "64 hex digits" },
        { hex "\n", 0, "with \\n" },
        { hex "\r\n", 0, "with \\r\\n" },
        { HEX "\n", 0, "upper case" },
        { "", -1, "empty" },
        { "\n", -1, "newline only" },
        { hex "\n\n", -1, "two newlines" },
        { hex "\r", -1, "\\r alone" },
        { hex " ", -1, "trailing space" },
        { " " hex, -1, "leading space" },
        { hex "0", -1, "65 digits" },
        { hex "00\n", -1, "66 digits" },
        { "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1"
          "\n", -1, "63 digits" },
        { "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g",
          -1, "not hex" },
        { "0x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
          -1, "0x prefix" },
    };

    for (i = 0; i < CP_KEY_LEN; i++) {
        expect[i] = (unsigned char) i;
    }

    fd = mkstemp(path);
    if (fd == -1) {
        ok(0, "mkstemp");
        return;
    }

    close(fd);

    for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (write_file(path, files[i].data, strlen(files[i].data)) != 0) {
            ok(0, "write %s", path);
            continue;
        }

        memset(key, 0xee, sizeof(key));

        if (files[i].rc == 0) {
            ok(cp_key_load(path, key) == 0
               && memcmp(key, expect, sizeof(key)) == 0,
               "key file: %s", files[i].name);

        } else {
            ok(cp_key_load(path, key) == -1 && key[0] == 0xee,
               "key file refused: %s", files[i].name);
        }
    }

    unlink(path);

    ok(cp_key_load(path, key) == -1, "missing key file");
    ok(cp_key_load("/", key) == -1, "a directory");

    if (keyfile != NULL) {
        ok(cp_key_load(keyfile, key) == 0, "loads %s", keyfile);

    } else {
        printf("ok %d # SKIP no key file given\n", ++tests);
    }

#undef hex
#undef HEX
}


static void
test_base32(void)
{
    char      out[16];
    size_t    n;
    unsigned  i;

    /* RFC 4648, section 10, without the padding */

    static const struct {
        const char  *in;
        const char  *out;
    } vectors[] = {
        { "", "" },
        { "f", "MY" },
        { "fo", "MZXQ" },
        { "foo", "MZXW6" },
        { "foob", "MZXW6YQ" },
        { "fooba", "MZXW6YTB" },
        { "foobar", "MZXW6YTBOI" },
    };

    for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        memset(out, '#', sizeof(out));

        n = cp_base32_encode((const unsigned char *) vectors[i].in,
                             strlen(vectors[i].in), out);

        ok(n == strlen(vectors[i].out)
           && memcmp(out, vectors[i].out, n) == 0 && out[n] == '#',
           "base32 \"%s\" = \"%.*s\"", vectors[i].in, (int) n, out);
    }

    n = cp_base32_encode(rfc_secret, 20, out);

    ok(n == 32, "20 bytes: 32 characters");
}


static void
test_random(void)
{
    unsigned char  a[32], b[32];

    ok(cp_random(a, sizeof(a)) == 0 && cp_random(b, sizeof(b)) == 0
       && memcmp(a, b, sizeof(a)) != 0, "random: two draws differ");
    ok(cp_random(a, 0) == 0, "random: zero bytes");
}


int
main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);

    test_totp();
    test_password();
    test_hostile_hashes();
    test_seal();
    test_key_load(argc > 1 ? argv[1] : NULL);
    test_base32();
    test_random();

    printf("1..%d\n", tests);

    if (failed) {
        printf("# failed %d of %d\n", failed, tests);
        return 1;
    }

    return 0;
}
