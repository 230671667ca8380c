
/*
 * Operator credentials, plain C over OpenSSL 3 (EVP and one-shot APIs
 * only), without nginx: the module and tools/nutripro-admin.c share it.
 *
 * Password hashes: scrypt, "$scrypt$ln=15,r=8,p=1$<salt>$<hash>" with a
 * 16-byte random salt and a 32-byte hash, both in unpadded standard
 * base64 (canonical: unused trailing bits must be zero).  About 32 MiB and
 * tens of milliseconds per hash: call it off the event loop (thread pool).
 * A stored hash is parsed strictly and its cost is bounded (ln 10..20,
 * r 1..16, p 1..4, and at most CP_SCRYPT_MAX_MEM bytes and
 * CP_SCRYPT_MAX_WORK), so a hostile row cannot exhaust memory or time.
 *
 * TOTP: RFC 6238 over RFC 4226, HMAC-SHA-1, 6 digits, 30-second steps,
 * T0 = 0.
 *
 * Sealed secrets: AES-256-GCM, nonce (12 random bytes) || ciphertext ||
 * tag (16 bytes), with the fixed additional authenticated data
 * "nutripro-totp-v1" (it names the purpose and the format version).  At
 * most CP_SEALED_MAX - 28 = 64 bytes of plaintext.  *outlen is output
 * only: out must hold len + 28 bytes when sealing (CP_SEALED_MAX always
 * suffices) and len - 28 bytes when opening (64 at most).
 *
 * Every function returns 0 on success and -1 on error unless its comment
 * in the header says otherwise.  Secrets on the stack are cleansed.
 */


#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "ngx_http_controlplane_crypto.h"


#define CP_SCRYPT_LN           15
#define CP_SCRYPT_R            8
#define CP_SCRYPT_P            1

#define CP_SCRYPT_LN_MIN       10
#define CP_SCRYPT_LN_MAX       20
#define CP_SCRYPT_R_MAX        16
#define CP_SCRYPT_P_MAX        4

/* 128 * r * N: 4 times the default parameters */
#define CP_SCRYPT_MAX_MEM      ((uint64_t) 128 * 1024 * 1024)
/* N * r * p, proportional to the time: 4 times the default parameters */
#define CP_SCRYPT_MAX_WORK     (((uint64_t) 4 << CP_SCRYPT_LN) * CP_SCRYPT_R)

#define CP_SALT_LEN            16
#define CP_HASH_LEN            32

#define CP_GCM_NONCE_LEN       12
#define CP_GCM_TAG_LEN         16
#define CP_GCM_AAD             "nutripro-totp-v1"
#define CP_GCM_AAD_LEN         (sizeof(CP_GCM_AAD) - 1)
#define CP_SEALED_PLAIN_MAX    (CP_SEALED_MAX - CP_GCM_NONCE_LEN            \
                                - CP_GCM_TAG_LEN)

#define CP_TOTP_DIGITS         6
#define CP_TOTP_PERIOD         30


static int cp_scrypt(const char *password, size_t len,
    const unsigned char *salt, size_t salt_len, unsigned ln, unsigned r,
    unsigned p, unsigned char *out, size_t out_len);
static size_t cp_base64_encode(const unsigned char *in, size_t len,
    char *out);
static int cp_base64_decode(const char *in, size_t len, unsigned char *out,
    size_t out_len);
static const char *cp_parse_param(const char *p, const char *name,
    unsigned min, unsigned max, unsigned *value);
static int cp_hex_value(int c);


static const char  cp_base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static const char  cp_base32_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

static const char  cp_scrypt_prefix[] = "$scrypt$";


int
cp_password_hash(const char *password, size_t len, char *out, size_t outlen)
{
    int            n;
    char           buf[CP_PASSWORD_HASH_MAX];
    size_t         off;
    unsigned char  salt[CP_SALT_LEN], hash[CP_HASH_LEN];

    if (len > CP_PASSWORD_MAX || (password == NULL && len != 0)) {
        return -1;
    }

    if (cp_random(salt, sizeof(salt)) != 0) {
        return -1;
    }

    if (cp_scrypt(password, len, salt, sizeof(salt), CP_SCRYPT_LN,
                  CP_SCRYPT_R, CP_SCRYPT_P, hash, sizeof(hash))
        != 0)
    {
        return -1;
    }

    n = snprintf(buf, sizeof(buf), "%sln=%d,r=%d,p=%d$", cp_scrypt_prefix,
                 CP_SCRYPT_LN, CP_SCRYPT_R, CP_SCRYPT_P);

    /* 22 + 1 + 43 base64 characters follow, then the NUL */

    if (n < 0 || (size_t) n + 22 + 1 + 43 + 1 > sizeof(buf)) {
        OPENSSL_cleanse(hash, sizeof(hash));
        return -1;
    }

    off = n;
    off += cp_base64_encode(salt, sizeof(salt), buf + off);
    buf[off++] = '$';
    off += cp_base64_encode(hash, sizeof(hash), buf + off);
    buf[off++] = '\0';

    OPENSSL_cleanse(hash, sizeof(hash));

    if (out == NULL || off > outlen) {
        return -1;
    }

    memcpy(out, buf, off);

    return 0;
}


int
cp_password_verify(const char *password, size_t len, const char *encoded)
{
    int             rc;
    size_t          elen;
    unsigned        ln, r, p;
    const char     *s, *salt_end, *hash_end;
    unsigned char   salt[CP_SALT_LEN], stored[CP_HASH_LEN],
                    computed[CP_HASH_LEN];

    if (encoded == NULL || len > CP_PASSWORD_MAX
        || (password == NULL && len != 0))
    {
        return -1;
    }

    elen = strnlen(encoded, CP_PASSWORD_HASH_MAX);
    if (elen == CP_PASSWORD_HASH_MAX) {
        return -1;
    }

    if (strncmp(encoded, cp_scrypt_prefix, sizeof(cp_scrypt_prefix) - 1)
        != 0)
    {
        return -1;
    }

    s = encoded + sizeof(cp_scrypt_prefix) - 1;

    s = cp_parse_param(s, "ln=", CP_SCRYPT_LN_MIN, CP_SCRYPT_LN_MAX, &ln);
    if (s == NULL || *s++ != ',') {
        return -1;
    }

    s = cp_parse_param(s, "r=", 1, CP_SCRYPT_R_MAX, &r);
    if (s == NULL || *s++ != ',') {
        return -1;
    }

    s = cp_parse_param(s, "p=", 1, CP_SCRYPT_P_MAX, &p);
    if (s == NULL || *s++ != '$') {
        return -1;
    }

    /* the bounds above keep these far from overflowing */

    if ((uint64_t) 128 * r * ((uint64_t) 1 << ln) > CP_SCRYPT_MAX_MEM
        || ((uint64_t) 1 << ln) * r * p > CP_SCRYPT_MAX_WORK)
    {
        return -1;
    }

    salt_end = strchr(s, '$');
    if (salt_end == NULL) {
        return -1;
    }

    if (cp_base64_decode(s, salt_end - s, salt, sizeof(salt)) != 0) {
        return -1;
    }

    s = salt_end + 1;
    hash_end = encoded + elen;

    if (cp_base64_decode(s, hash_end - s, stored, sizeof(stored)) != 0) {
        return -1;
    }

    if (cp_scrypt(password, len, salt, sizeof(salt), ln, r, p, computed,
                  sizeof(computed))
        != 0)
    {
        return -1;
    }

    rc = (CRYPTO_memcmp(computed, stored, sizeof(computed)) == 0);

    OPENSSL_cleanse(computed, sizeof(computed));

    return rc;
}


int
cp_totp_code(const unsigned char *secret, size_t len, uint64_t step)
{
    int             i;
    uint32_t        bin;
    unsigned int    mac_len;
    unsigned char   msg[8], mac[EVP_MAX_MD_SIZE];
    unsigned        offset;

    if (secret == NULL || len == 0 || len > INT_MAX) {
        return -1;
    }

    for (i = 7; i >= 0; i--) {
        msg[i] = (unsigned char) (step & 0xff);
        step >>= 8;
    }

    mac_len = 0;

    if (HMAC(EVP_sha1(), secret, (int) len, msg, sizeof(msg), mac, &mac_len)
        == NULL
        || mac_len != 20)
    {
        ERR_clear_error();
        OPENSSL_cleanse(mac, sizeof(mac));
        return -1;
    }

    /* RFC 4226, 5.3: dynamic truncation */

    offset = mac[19] & 0x0f;

    bin = ((uint32_t) (mac[offset] & 0x7f) << 24)
          | ((uint32_t) mac[offset + 1] << 16)
          | ((uint32_t) mac[offset + 2] << 8)
          | (uint32_t) mac[offset + 3];

    OPENSSL_cleanse(mac, sizeof(mac));

    return (int) (bin % 1000000);
}


int64_t
cp_totp_check(const unsigned char *secret, size_t len, time_t now,
    const char *code, size_t code_len)
{
    int       c, i, j;
    char      expect[CP_TOTP_DIGITS];
    int64_t   found, step, base;
    uint64_t  mask, matched, eq;

    if (code == NULL || code_len != CP_TOTP_DIGITS || now < 0) {
        return -1;
    }

    for (i = 0; i < CP_TOTP_DIGITS; i++) {
        if (code[i] < '0' || code[i] > '9') {
            return -1;
        }
    }

    base = (int64_t) now / CP_TOTP_PERIOD;

    found = -1;
    matched = 0;

    for (i = -1; i <= 1; i++) {
        step = base + i;

        c = cp_totp_code(secret, len, (uint64_t) (step < 0 ? 0 : step));
        if (c < 0) {
            return -1;
        }

        for (j = CP_TOTP_DIGITS - 1; j >= 0; j--) {
            expect[j] = (char) ('0' + c % 10);
            c /= 10;
        }

        /* all ones if equal and not before the first step */

        eq = (uint64_t) (CRYPTO_memcmp(expect, code, CP_TOTP_DIGITS) == 0)
             & (uint64_t) (step >= 0);
        mask = (0 - eq) & ~matched;

        found = (int64_t) (((uint64_t) found & ~mask)
                           | ((uint64_t) step & mask));
        matched |= mask;
    }

    OPENSSL_cleanse(expect, sizeof(expect));

    return found;
}


int
cp_secret_seal(const unsigned char *key, const unsigned char *in,
    size_t len, unsigned char *out, size_t *outlen)
{
    int              n, rc;
    EVP_CIPHER_CTX  *ctx;

    if (key == NULL || out == NULL || outlen == NULL
        || (in == NULL && len != 0) || len > CP_SEALED_PLAIN_MAX)
    {
        return -1;
    }

    if (cp_random(out, CP_GCM_NONCE_LEN) != 0) {
        return -1;
    }

    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        return -1;
    }

    rc = -1;

    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1
        || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CP_GCM_NONCE_LEN,
                               NULL)
           != 1
        || EVP_EncryptInit_ex(ctx, NULL, NULL, key, out) != 1
        || EVP_EncryptUpdate(ctx, NULL, &n,
                             (const unsigned char *) CP_GCM_AAD,
                             CP_GCM_AAD_LEN)
           != 1)
    {
        goto done;
    }

    n = 0;

    if (len != 0
        && (EVP_EncryptUpdate(ctx, out + CP_GCM_NONCE_LEN, &n, in, (int) len)
            != 1
            || (size_t) n != len))
    {
        goto done;
    }

    if (EVP_EncryptFinal_ex(ctx, out + CP_GCM_NONCE_LEN + n, &n) != 1
        || n != 0
        || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CP_GCM_TAG_LEN,
                               out + CP_GCM_NONCE_LEN + len)
           != 1)
    {
        goto done;
    }

    *outlen = CP_GCM_NONCE_LEN + len + CP_GCM_TAG_LEN;
    rc = 0;

done:

    if (rc != 0) {
        OPENSSL_cleanse(out, CP_GCM_NONCE_LEN + len + CP_GCM_TAG_LEN);
        ERR_clear_error();
    }

    EVP_CIPHER_CTX_free(ctx);

    return rc;
}


int
cp_secret_open(const unsigned char *key, const unsigned char *in,
    size_t len, unsigned char *out, size_t *outlen)
{
    int              n, rc;
    size_t           plen;
    unsigned char    tag[CP_GCM_TAG_LEN];
    EVP_CIPHER_CTX  *ctx;

    if (key == NULL || in == NULL || out == NULL || outlen == NULL
        || len < CP_GCM_NONCE_LEN + CP_GCM_TAG_LEN || len > CP_SEALED_MAX)
    {
        return -1;
    }

    plen = len - CP_GCM_NONCE_LEN - CP_GCM_TAG_LEN;

    /* the tag control takes a non-const pointer */
    memcpy(tag, in + len - CP_GCM_TAG_LEN, CP_GCM_TAG_LEN);

    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        return -1;
    }

    rc = -1;

    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1
        || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CP_GCM_NONCE_LEN,
                               NULL)
           != 1
        || EVP_DecryptInit_ex(ctx, NULL, NULL, key, in) != 1
        || EVP_DecryptUpdate(ctx, NULL, &n,
                             (const unsigned char *) CP_GCM_AAD,
                             CP_GCM_AAD_LEN)
           != 1)
    {
        goto done;
    }

    n = 0;

    if (plen != 0
        && (EVP_DecryptUpdate(ctx, out, &n, in + CP_GCM_NONCE_LEN, (int) plen)
            != 1
            || (size_t) n != plen))
    {
        goto done;
    }

    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CP_GCM_TAG_LEN, tag)
        != 1)
    {
        goto done;
    }

    /* fails on a tag mismatch: nothing decrypted is released */

    if (EVP_DecryptFinal_ex(ctx, out + n, &n) != 1 || n != 0) {
        goto done;
    }

    *outlen = plen;
    rc = 0;

done:

    if (rc != 0) {
        OPENSSL_cleanse(out, plen);
        ERR_clear_error();
    }

    EVP_CIPHER_CTX_free(ctx);

    return rc;
}


int
cp_key_load(const char *path, unsigned char *key)
{
    int            fd, hi, lo, rc;
    char           buf[64 + 2 + 1];
    size_t         i, n;
    ssize_t        r;
    unsigned char  k[CP_KEY_LEN];

    if (path == NULL || key == NULL) {
        return -1;
    }

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd == -1) {
        return -1;
    }

    /* read at most one byte more than a valid file holds */

    n = 0;

    while (n < sizeof(buf)) {
        r = read(fd, buf + n, sizeof(buf) - n);

        if (r == -1) {
            if (errno == EINTR) {
                continue;
            }

            close(fd);
            OPENSSL_cleanse(buf, sizeof(buf));
            return -1;
        }

        if (r == 0) {
            break;
        }

        n += r;
    }

    close(fd);

    rc = -1;

    if (n == 64
        || (n == 65 && buf[64] == '\n')
        || (n == 66 && buf[64] == '\r' && buf[65] == '\n'))
    {
        rc = 0;

        for (i = 0; i < CP_KEY_LEN; i++) {
            hi = cp_hex_value((unsigned char) buf[2 * i]);
            lo = cp_hex_value((unsigned char) buf[2 * i + 1]);

            if (hi < 0 || lo < 0) {
                rc = -1;
                break;
            }

            k[i] = (unsigned char) (hi << 4 | lo);
        }

        if (rc == 0) {
            memcpy(key, k, CP_KEY_LEN);
        }
    }

    OPENSSL_cleanse(buf, sizeof(buf));
    OPENSSL_cleanse(k, sizeof(k));

    return rc;
}


size_t
cp_base32_encode(const unsigned char *in, size_t len, char *out)
{
    char      *p;
    size_t     i;
    unsigned   bits;
    uint32_t   acc;

    /* (len * 8 + 4) / 5 characters, not NUL-terminated */

    p = out;
    acc = 0;
    bits = 0;

    for (i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;

        while (bits >= 5) {
            bits -= 5;
            *p++ = cp_base32_alphabet[(acc >> bits) & 0x1f];
        }

        acc &= (1u << bits) - 1;
    }

    if (bits > 0) {
        *p++ = cp_base32_alphabet[(acc << (5 - bits)) & 0x1f];
    }

    return p - out;
}


int
cp_random(unsigned char *out, size_t len)
{
    if (out == NULL || len > INT_MAX) {
        return -1;
    }

    if (len == 0) {
        return 0;
    }

    if (RAND_bytes(out, (int) len) != 1) {
        ERR_clear_error();
        return -1;
    }

    return 0;
}


static int
cp_scrypt(const char *password, size_t len, const unsigned char *salt,
    size_t salt_len, unsigned ln, unsigned r, unsigned p, unsigned char *out,
    size_t out_len)
{
    uint64_t  N, maxmem;

    N = (uint64_t) 1 << ln;

    /* exactly what OpenSSL allocates: B (p * 128 * r) and V */

    maxmem = (uint64_t) 128 * r * (N + 2) + (uint64_t) 128 * r * p;

    if (EVP_PBE_scrypt(password == NULL ? "" : password, len, salt, salt_len,
                       N, r, p, maxmem, out, out_len)
        != 1)
    {
        ERR_clear_error();
        OPENSSL_cleanse(out, out_len);
        return -1;
    }

    return 0;
}


static size_t
cp_base64_encode(const unsigned char *in, size_t len, char *out)
{
    char      *p;
    size_t     i;
    uint32_t   v;

    p = out;

    for (i = 0; i + 2 < len; i += 3) {
        v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8 | in[i + 2];

        *p++ = cp_base64_alphabet[(v >> 18) & 0x3f];
        *p++ = cp_base64_alphabet[(v >> 12) & 0x3f];
        *p++ = cp_base64_alphabet[(v >> 6) & 0x3f];
        *p++ = cp_base64_alphabet[v & 0x3f];
    }

    if (len - i == 1) {
        v = (uint32_t) in[i] << 16;

        *p++ = cp_base64_alphabet[(v >> 18) & 0x3f];
        *p++ = cp_base64_alphabet[(v >> 12) & 0x3f];

    } else if (len - i == 2) {
        v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8;

        *p++ = cp_base64_alphabet[(v >> 18) & 0x3f];
        *p++ = cp_base64_alphabet[(v >> 12) & 0x3f];
        *p++ = cp_base64_alphabet[(v >> 6) & 0x3f];
    }

    return p - out;
}


/*
 * Unpadded standard base64 decoding to exactly out_len bytes.  Only the
 * canonical encoding is accepted: the right length, no padding, and zero
 * unused bits in the last character.
 */

static int
cp_base64_decode(const char *in, size_t len, unsigned char *out,
    size_t out_len)
{
    int        c, d;
    size_t     i, n;
    unsigned   bits;
    uint32_t   acc;

    if (len != (out_len * 4 + 2) / 3) {
        return -1;
    }

    acc = 0;
    bits = 0;
    n = 0;

    for (i = 0; i < len; i++) {
        c = (unsigned char) in[i];

        if (c >= 'A' && c <= 'Z') {
            d = c - 'A';

        } else if (c >= 'a' && c <= 'z') {
            d = c - 'a' + 26;

        } else if (c >= '0' && c <= '9') {
            d = c - '0' + 52;

        } else if (c == '+') {
            d = 62;

        } else if (c == '/') {
            d = 63;

        } else {
            return -1;
        }

        acc = (acc << 6) | (uint32_t) d;
        bits += 6;

        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char) (acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }

    if (n != out_len || acc != 0) {
        return -1;
    }

    return 0;
}


/* name, then a decimal without sign or leading zero in min..max */

static const char *
cp_parse_param(const char *p, const char *name, unsigned min, unsigned max,
    unsigned *value)
{
    size_t    n;
    unsigned  v;

    n = strlen(name);

    if (strncmp(p, name, n) != 0) {
        return NULL;
    }

    p += n;

    if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9')) {
        return NULL;
    }

    v = 0;

    for (n = 0; *p >= '0' && *p <= '9'; p++, n++) {
        if (n == 3) {
            return NULL;
        }

        v = v * 10 + (*p - '0');
    }

    if (v < min || v > max) {
        return NULL;
    }

    *value = v;

    return p;
}


static int
cp_hex_value(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }

    return -1;
}
