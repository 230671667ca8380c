
/*
 * Operator credentials: password hashes (scrypt), TOTP (RFC 6238), TOTP
 * secrets sealed with AES-256-GCM, session tokens.  Plain C over OpenSSL,
 * without nginx, so that the bootstrap tool (tools/nutripro-admin.c)
 * shares it with the module.
 */


#ifndef _NGX_HTTP_CONTROLPLANE_CRYPTO_H_INCLUDED_
#define _NGX_HTTP_CONTROLPLANE_CRYPTO_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <time.h>


#pragma GCC visibility push(hidden)


#define CP_PASSWORD_HASH_MAX   160     /* encoded hash, with its NUL */
#define CP_PASSWORD_MAX        1024    /* longest password accepted */
#define CP_TOTP_SECRET_LEN     20      /* bytes (160 bits, SHA-1) */
#define CP_SEALED_MAX          (12 + 64 + 16)
#define CP_KEY_LEN             32
#define CP_TOKEN_LEN           32      /* session token, raw bytes */


/*
 * "$scrypt$ln=<log2 N>,r=<r>,p=<p>$<base64 salt>$<base64 hash>"
 * (unpadded standard base64), 16-byte salt, 32-byte hash; 0 on success.
 */
int cp_password_hash(const char *password, size_t len, char *out,
    size_t outlen);

/* 1: matches (constant-time compare); 0: does not; -1: malformed hash */
int cp_password_verify(const char *password, size_t len,
    const char *encoded);

/* 6-digit code of a 30-second step */
int cp_totp_code(const unsigned char *secret, size_t len, uint64_t step);

/*
 * The step (now/30 - 1 .. now/30 + 1) whose code equals the 6 ASCII
 * digits in code (len must be 6), or -1.  Every step is computed and
 * compared in constant time.
 */
int64_t cp_totp_check(const unsigned char *secret, size_t len, time_t now,
    const char *code, size_t code_len);

/* AES-256-GCM: out = 12-byte random nonce || ciphertext || 16-byte tag */
int cp_secret_seal(const unsigned char *key, const unsigned char *in,
    size_t len, unsigned char *out, size_t *outlen);
int cp_secret_open(const unsigned char *key, const unsigned char *in,
    size_t len, unsigned char *out, size_t *outlen);

/* a key file: 64 hex digits (32 bytes), trailing newline allowed */
int cp_key_load(const char *path, unsigned char *key);

/* RFC 4648 base32 without padding, upper case; returns the length */
size_t cp_base32_encode(const unsigned char *in, size_t len, char *out);

/* cryptographically random bytes; 0 on success */
int cp_random(unsigned char *out, size_t len);


#pragma GCC visibility pop


#endif /* _NGX_HTTP_CONTROLPLANE_CRYPTO_H_INCLUDED_ */
