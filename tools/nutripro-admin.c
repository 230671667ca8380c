
/*
 * nutripro-admin: operator bootstrap and maintenance for the control plane.
 *
 *   nutripro-admin create-operator --username NAME
 *       --role admin|onboarding|tenant_manager [--tenant SLUG]
 *       [--password-file FILE] --totp-key FILE
 *   nutripro-admin verify-audit
 *   nutripro-admin totp --secret BASE32|- [--time T]
 *   nutripro-admin hash-password            (password on stdin)
 *
 * The database is reached with libpq's PG* environment (PGHOST, PGPORT,
 * PGDATABASE, PGUSER, ...), as the nutripro_controlplane role.  Every
 * statement is parameterised.
 *
 * Exit status: 0 success; 1 refused or failed (bad input, duplicate
 * username, unknown tenant, broken audit chain); 2 usage; 3 database or
 * system error.
 */


#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "ngx_http_controlplane_crypto.h"


#define ADMIN_OK               0
#define ADMIN_FAILED           1
#define ADMIN_USAGE            2
#define ADMIN_ERROR            3

#define ADMIN_PASSWORD_MIN     12      /* create-operator's own floor */

#define ADMIN_OID_TEXT         25
#define ADMIN_OID_BYTEA        17

#define ADMIN_ISSUER           "NutriPro"


typedef struct {
    char    data[CP_PASSWORD_MAX + 3];
    size_t  len;
} admin_password_t;


static int admin_create_operator(int argc, char **argv);
static int admin_verify_audit(int argc, char **argv);
static int admin_totp(int argc, char **argv);
static int admin_hash_password(int argc, char **argv);
static PGconn *admin_connect(void);
static int admin_read_password(FILE *f, admin_password_t *pw,
    const char *what);
static int admin_read_password_tty(admin_password_t *pw);
static int admin_valid_username(const char *s);
static void admin_generate_password(admin_password_t *pw);
static ssize_t admin_base32_decode(const char *in, unsigned char *out,
    size_t size);
static void admin_print_uri_escaped(const char *s);
static void admin_usage(FILE *f);


static const char  *admin_prog = "nutripro-admin";


int
main(int argc, char **argv)
{
    const char  *cmd;

    if (argc < 2) {
        admin_usage(stderr);
        return ADMIN_USAGE;
    }

    cmd = argv[1];

    if (strcmp(cmd, "create-operator") == 0) {
        return admin_create_operator(argc - 2, argv + 2);
    }

    if (strcmp(cmd, "verify-audit") == 0) {
        return admin_verify_audit(argc - 2, argv + 2);
    }

    if (strcmp(cmd, "totp") == 0) {
        return admin_totp(argc - 2, argv + 2);
    }

    if (strcmp(cmd, "hash-password") == 0) {
        return admin_hash_password(argc - 2, argv + 2);
    }

    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0
        || strcmp(cmd, "-h") == 0)
    {
        admin_usage(stdout);
        return ADMIN_OK;
    }

    fprintf(stderr, "%s: unknown command \"%s\"\n", admin_prog, cmd);
    admin_usage(stderr);

    return ADMIN_USAGE;
}


static int
admin_create_operator(int argc, char **argv)
{
    int                 i, rc, generated;
    FILE               *f;
    char                hash[CP_PASSWORD_HASH_MAX];
    char                b32[(CP_TOTP_SECRET_LEN * 8 + 4) / 5 + 1];
    size_t              sealed_len, check_len, b32_len;
    PGconn             *conn;
    PGresult           *res;
    const char         *username, *role, *tenant, *password_file, *key_file;
    const char         *sqlstate, *constraint, *values[5], **opt;
    admin_password_t    pw;
    int                 lengths[5], formats[5];
    unsigned char       key[CP_KEY_LEN], secret[CP_TOTP_SECRET_LEN],
                        check[CP_SEALED_MAX], sealed[CP_SEALED_MAX];

    static const Oid  types[5] = {
        ADMIN_OID_TEXT, ADMIN_OID_TEXT, ADMIN_OID_TEXT, ADMIN_OID_TEXT,
        ADMIN_OID_BYTEA
    };

    /*
     * One statement, so one transaction: the operator and its audit row
     * exist together or not at all.  A tenant_manager's tenant must exist
     * and not be deleted; otherwise nothing is inserted and no row comes
     * back.
     */

    static const char  sql[] =
        "WITH tenant AS ("
        "    SELECT id FROM tenants"
        "     WHERE slug = $3 AND deleted_at IS NULL"
        "), op AS ("
        "    INSERT INTO operators (username, role, tenant_id,"
        "                           password_hash, totp_secret_enc)"
        "    SELECT $1, $2, (SELECT id FROM tenant), $4, $5"
        "     WHERE $3 IS NULL OR EXISTS (SELECT 1 FROM tenant)"
        "    RETURNING id, username, role"
        "), audit AS ("
        "    INSERT INTO audit_log (operator_username, action, target_type,"
        "                           target_id, details)"
        "    SELECT username, 'operator.bootstrap', 'operator', id::text,"
        "           jsonb_strip_nulls(jsonb_build_object("
        "               'role', role, 'tenant', $3,"
        "               'via', 'nutripro-admin'))"
        "      FROM op"
        "    RETURNING id"
        ")"
        "SELECT op.id, audit.id FROM op, audit";

    username = NULL;
    role = NULL;
    tenant = NULL;
    password_file = NULL;
    key_file = NULL;

    for (i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--username") == 0) {
            opt = &username;

        } else if (strcmp(argv[i], "--role") == 0) {
            opt = &role;

        } else if (strcmp(argv[i], "--tenant") == 0) {
            opt = &tenant;

        } else if (strcmp(argv[i], "--password-file") == 0) {
            opt = &password_file;

        } else if (strcmp(argv[i], "--totp-key") == 0) {
            opt = &key_file;

        } else {
            fprintf(stderr, "%s: create-operator: unknown option \"%s\"\n",
                    admin_prog, argv[i]);
            return ADMIN_USAGE;
        }

        if (i + 1 == argc) {
            fprintf(stderr, "%s: create-operator: %s needs a value\n",
                    admin_prog, argv[i]);
            return ADMIN_USAGE;
        }

        *opt = argv[++i];
    }

    if (username == NULL || role == NULL || key_file == NULL) {
        fprintf(stderr, "%s: create-operator needs --username, --role and "
                "--totp-key\n", admin_prog);
        return ADMIN_USAGE;
    }

    if (!admin_valid_username(username)) {
        fprintf(stderr, "%s: invalid username \"%s\": 1 to 64 characters "
                "from A-Z a-z 0-9 . _ @ -, starting with a letter or a "
                "digit\n", admin_prog, username);
        return ADMIN_FAILED;
    }

    if (strcmp(role, "admin") != 0 && strcmp(role, "onboarding") != 0
        && strcmp(role, "tenant_manager") != 0)
    {
        fprintf(stderr, "%s: invalid role \"%s\": admin, onboarding or "
                "tenant_manager\n", admin_prog, role);
        return ADMIN_FAILED;
    }

    if ((strcmp(role, "tenant_manager") == 0) != (tenant != NULL)) {
        fprintf(stderr, "%s: --tenant is required for the role "
                "tenant_manager, and only for it\n", admin_prog);
        return ADMIN_FAILED;
    }

    if (cp_key_load(key_file, key) != 0) {
        fprintf(stderr, "%s: cannot load the TOTP key from %s: it must be "
                "a readable file of exactly 64 hex digits\n",
                admin_prog, key_file);
        return ADMIN_FAILED;
    }

    rc = ADMIN_ERROR;
    conn = NULL;
    res = NULL;
    generated = 0;

    if (password_file != NULL) {
        f = fopen(password_file, "r");
        if (f == NULL) {
            fprintf(stderr, "%s: cannot open %s: %s\n",
                    admin_prog, password_file, strerror(errno));
            rc = ADMIN_FAILED;
            goto done;
        }

        i = admin_read_password(f, &pw, password_file);
        fclose(f);

        if (i != 0) {
            rc = ADMIN_FAILED;
            goto done;
        }

        if (pw.len < ADMIN_PASSWORD_MIN) {
            fprintf(stderr, "%s: the password in %s is shorter than %d "
                    "characters\n", admin_prog, password_file,
                    ADMIN_PASSWORD_MIN);
            rc = ADMIN_FAILED;
            goto done;
        }

    } else {
        admin_generate_password(&pw);
        generated = 1;
    }

    if (cp_password_hash(pw.data, pw.len, hash, sizeof(hash)) != 0) {
        fprintf(stderr, "%s: cannot hash the password\n", admin_prog);
        goto done;
    }

    if (cp_random(secret, sizeof(secret)) != 0
        || cp_secret_seal(key, secret, sizeof(secret), sealed, &sealed_len)
           != 0
        || cp_secret_open(key, sealed, sealed_len, check, &check_len) != 0
        || check_len != sizeof(secret)
        || CRYPTO_memcmp(check, secret, sizeof(secret)) != 0)
    {
        fprintf(stderr, "%s: cannot generate and seal the TOTP secret\n",
                admin_prog);
        goto done;
    }

    conn = admin_connect();
    if (conn == NULL) {
        goto done;
    }

    values[0] = username;
    values[1] = role;
    values[2] = tenant;
    values[3] = hash;
    values[4] = (const char *) sealed;

    for (i = 0; i < 5; i++) {
        lengths[i] = 0;
        formats[i] = 0;
    }

    lengths[4] = (int) sealed_len;
    formats[4] = 1;

    res = PQexecParams(conn, sql, 5, types, values, lengths, formats, 0);

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);

        if (sqlstate != NULL && strcmp(sqlstate, "23505") == 0
            && constraint != NULL
            && strcmp(constraint, "operators_username_lower_key") == 0)
        {
            fprintf(stderr, "%s: an operator named \"%s\" already exists "
                    "(usernames are case-insensitive)\n",
                    admin_prog, username);
            rc = ADMIN_FAILED;

        } else {
            fprintf(stderr, "%s: cannot create the operator: %s",
                    admin_prog, PQresultErrorMessage(res));
        }

        goto done;
    }

    if (PQntuples(res) != 1) {
        fprintf(stderr, "%s: no tenant with the slug \"%s\" (or it is "
                "deleted); nothing was created\n", admin_prog,
                tenant ? tenant : "");
        rc = ADMIN_FAILED;
        goto done;
    }

    b32_len = cp_base32_encode(secret, sizeof(secret), b32);
    b32[b32_len] = '\0';

    printf("operator:    created (id %s, audit row %s)\n",
           PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
    printf("username:    %s\n", username);
    printf("role:        %s\n", role);

    if (tenant != NULL) {
        printf("tenant:      %s\n", tenant);
    }

    if (generated) {
        printf("password:    %s\n", pw.data);
    }

    printf("totp secret: %s\n", b32);
    printf("otpauth uri: otpauth://totp/" ADMIN_ISSUER ":");
    admin_print_uri_escaped(username);
    printf("?secret=%s&issuer=" ADMIN_ISSUER
           "&algorithm=SHA1&digits=6&period=30\n", b32);

    fflush(stdout);

    fprintf(stderr, "%s: %sthe TOTP secret %s shown only this once: "
            "store %s now\n", admin_prog,
            generated ? "the password and " : "",
            generated ? "are" : "is", generated ? "them" : "it");

    OPENSSL_cleanse(b32, sizeof(b32));

    rc = ADMIN_OK;

done:

    PQclear(res);

    if (conn != NULL) {
        PQfinish(conn);
    }

    OPENSSL_cleanse(&pw, sizeof(pw));
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(check, sizeof(check));

    return rc;
}


static int
admin_verify_audit(int argc, char **argv)
{
    int        rc;
    PGconn    *conn;
    PGresult  *res;

    if (argc != 0) {
        fprintf(stderr, "%s: verify-audit takes no arguments (\"%s\")\n",
                admin_prog, argv[0]);
        return ADMIN_USAGE;
    }

    conn = admin_connect();
    if (conn == NULL) {
        return ADMIN_ERROR;
    }

    rc = ADMIN_ERROR;

    /*
     * audit_verify() reads the chain and its head from one snapshot, and
     * so does the count beside it.  The walk may outlast the role's
     * default statement_timeout on a big log.
     */

    res = PQexec(conn, "BEGIN READ ONLY");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        goto failed;
    }

    PQclear(res);

    res = PQexec(conn, "SET LOCAL statement_timeout = '10min'");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        goto failed;
    }

    PQclear(res);

    res = PQexec(conn, "SELECT audit_verify(), "
                       "(SELECT count(*) FROM audit_log)");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        goto failed;
    }

    if (PQgetisnull(res, 0, 0)) {
        printf("audit chain intact (%s rows)\n", PQgetvalue(res, 0, 1));
        rc = ADMIN_OK;

    } else {
        printf("audit chain broken at id %s\n", PQgetvalue(res, 0, 0));
        rc = ADMIN_FAILED;
    }

    PQclear(res);
    PQfinish(conn);

    return rc;

failed:

    fprintf(stderr, "%s: cannot verify the audit chain: %s", admin_prog,
            PQresultErrorMessage(res));

    PQclear(res);
    PQfinish(conn);

    return rc;
}


static int
admin_totp(int argc, char **argv)
{
    int            i, code;
    char          *end, line[256];
    ssize_t        n;
    long long      t;
    const char    *secret_arg, *time_arg, *b32;
    unsigned char  secret[128];

    secret_arg = NULL;
    time_arg = NULL;

    for (i = 0; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--secret") == 0) {
            secret_arg = argv[++i];

        } else if (i + 1 < argc && strcmp(argv[i], "--time") == 0) {
            time_arg = argv[++i];

        } else {
            fprintf(stderr, "%s: totp --secret BASE32|- [--time T]\n",
                    admin_prog);
            return ADMIN_USAGE;
        }
    }

    if (secret_arg == NULL) {
        fprintf(stderr, "%s: totp needs --secret BASE32 (or - to read it "
                "from stdin)\n", admin_prog);
        return ADMIN_USAGE;
    }

    b32 = secret_arg;

    if (strcmp(secret_arg, "-") == 0) {
        if (fgets(line, sizeof(line), stdin) == NULL) {
            fprintf(stderr, "%s: no secret on stdin\n", admin_prog);
            return ADMIN_FAILED;
        }

        line[strcspn(line, "\r\n")] = '\0';
        b32 = line;
    }

    n = admin_base32_decode(b32, secret, sizeof(secret));

    OPENSSL_cleanse(line, sizeof(line));

    if (n <= 0) {
        fprintf(stderr, "%s: the secret is not base32 (RFC 4648, 1 to 128 "
                "bytes)\n", admin_prog);
        return ADMIN_FAILED;
    }

    if (time_arg != NULL) {
        errno = 0;
        t = strtoll(time_arg, &end, 10);

        if (errno != 0 || end == time_arg || *end != '\0' || t < 0
            || time_arg[0] == '-' || time_arg[0] == '+'
            || time_arg[0] == ' ')
        {
            fprintf(stderr, "%s: invalid --time \"%s\": seconds since the "
                    "epoch\n", admin_prog, time_arg);
            OPENSSL_cleanse(secret, sizeof(secret));
            return ADMIN_FAILED;
        }

    } else {
        t = (long long) time(NULL);
    }

    code = cp_totp_code(secret, (size_t) n, (uint64_t) t / 30);

    OPENSSL_cleanse(secret, sizeof(secret));

    if (code < 0) {
        fprintf(stderr, "%s: cannot compute the code\n", admin_prog);
        return ADMIN_ERROR;
    }

    printf("%06d\n", code);

    return ADMIN_OK;
}


static int
admin_hash_password(int argc, char **argv)
{
    int               rc;
    char              hash[CP_PASSWORD_HASH_MAX];
    admin_password_t  pw;

    if (argc != 0) {
        fprintf(stderr, "%s: hash-password reads the password from stdin "
                "and takes no arguments (\"%s\")\n", admin_prog, argv[0]);
        return ADMIN_USAGE;
    }

    if (isatty(STDIN_FILENO)) {
        rc = admin_read_password_tty(&pw);

    } else {
        rc = admin_read_password(stdin, &pw, "stdin");
    }

    if (rc != 0) {
        OPENSSL_cleanse(&pw, sizeof(pw));
        return ADMIN_FAILED;
    }

    rc = cp_password_hash(pw.data, pw.len, hash, sizeof(hash));

    OPENSSL_cleanse(&pw, sizeof(pw));

    if (rc != 0) {
        fprintf(stderr, "%s: cannot hash the password\n", admin_prog);
        return ADMIN_ERROR;
    }

    printf("%s\n", hash);

    return ADMIN_OK;
}


static PGconn *
admin_connect(void)
{
    PGconn  *conn;

    static const char  *keys[] = { "fallback_application_name", NULL };
    static const char  *values[] = { "nutripro-admin", NULL };

    /* everything else comes from the PG* environment */

    conn = PQconnectdbParams(keys, values, 0);

    if (conn == NULL) {
        fprintf(stderr, "%s: out of memory\n", admin_prog);
        return NULL;
    }

    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "%s: cannot connect to PostgreSQL (PGHOST, PGPORT, "
                "PGDATABASE, PGUSER): %s", admin_prog, PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }

    return conn;
}


/*
 * The whole of f, less one trailing "\n" or "\r\n": 1 to CP_PASSWORD_MAX
 * bytes, without NUL, CR or LF.
 */

static int
admin_read_password(FILE *f, admin_password_t *pw, const char *what)
{
    size_t  n;

    n = fread(pw->data, 1, sizeof(pw->data), f);

    if (ferror(f)) {
        fprintf(stderr, "%s: cannot read %s\n", admin_prog, what);
        return -1;
    }

    if (n == sizeof(pw->data)) {
        fprintf(stderr, "%s: the password in %s is longer than %d bytes\n",
                admin_prog, what, CP_PASSWORD_MAX);
        return -1;
    }

    if (n > 0 && pw->data[n - 1] == '\n') {
        n--;

        if (n > 0 && pw->data[n - 1] == '\r') {
            n--;
        }
    }

    if (n == 0) {
        fprintf(stderr, "%s: the password in %s is empty\n", admin_prog,
                what);
        return -1;
    }

    if (n > CP_PASSWORD_MAX) {
        fprintf(stderr, "%s: the password in %s is longer than %d bytes\n",
                admin_prog, what, CP_PASSWORD_MAX);
        return -1;
    }

    if (memchr(pw->data, '\0', n) != NULL || memchr(pw->data, '\n', n)
        || memchr(pw->data, '\r', n))
    {
        fprintf(stderr, "%s: the password in %s has a NUL or a line break "
                "inside it (one line expected)\n", admin_prog, what);
        return -1;
    }

    pw->data[n] = '\0';
    pw->len = n;

    return 0;
}


static int
admin_read_password_tty(admin_password_t *pw)
{
    int             rc;
    struct termios  saved, quiet;

    fprintf(stderr, "password: ");
    fflush(stderr);

    if (tcgetattr(STDIN_FILENO, &saved) != 0) {
        return admin_read_password(stdin, pw, "stdin");
    }

    quiet = saved;
    quiet.c_lflag &= ~(tcflag_t) ECHO;
    quiet.c_lflag |= ECHONL;

    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);

    rc = -1;

    if (fgets(pw->data, sizeof(pw->data), stdin) != NULL) {
        pw->len = strlen(pw->data);

        if (pw->len > 0 && pw->data[pw->len - 1] == '\n') {
            pw->data[--pw->len] = '\0';
            rc = 0;

        } else {
            fprintf(stderr, "%s: the password is longer than %d bytes\n",
                    admin_prog, CP_PASSWORD_MAX);
        }
    }

    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);

    if (rc == 0 && (pw->len == 0 || pw->len > CP_PASSWORD_MAX)) {
        fprintf(stderr, "%s: the password must be 1 to %d bytes\n",
                admin_prog, CP_PASSWORD_MAX);
        rc = -1;
    }

    return rc;
}


/* as the operators.username CHECK: ^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$ */

static int
admin_valid_username(const char *s)
{
    size_t  i;

    for (i = 0; s[i]; i++) {
        if (i == 64) {
            return 0;
        }

        if ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z')
            || (s[i] >= '0' && s[i] <= '9'))
        {
            continue;
        }

        if (i > 0 && (s[i] == '.' || s[i] == '_' || s[i] == '@'
                      || s[i] == '-'))
        {
            continue;
        }

        return 0;
    }

    return i > 0;
}


/* 120 random bits: "xxxxxx-xxxxxx-xxxxxx-xxxxxx", lower-case base32 */

static void
admin_generate_password(admin_password_t *pw)
{
    char           b32[24];
    size_t         i, n;
    unsigned char  raw[15];

    if (cp_random(raw, sizeof(raw)) != 0) {
        fprintf(stderr, "%s: no randomness\n", admin_prog);
        exit(ADMIN_ERROR);
    }

    cp_base32_encode(raw, sizeof(raw), b32);

    n = 0;

    for (i = 0; i < sizeof(b32); i++) {
        if (i > 0 && i % 6 == 0) {
            pw->data[n++] = '-';
        }

        pw->data[n++] = (b32[i] >= 'A' && b32[i] <= 'Z') ? b32[i] + 32
                                                         : b32[i];
    }

    pw->data[n] = '\0';
    pw->len = n;

    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(b32, sizeof(b32));
}


/*
 * RFC 4648 base32, either case, "=" padding and spaces ignored (as
 * authenticator apps show secrets in groups); returns the length, or -1.
 */

static ssize_t
admin_base32_decode(const char *in, unsigned char *out, size_t size)
{
    int       c, d;
    size_t    n;
    unsigned  bits;
    uint32_t  acc;

    acc = 0;
    bits = 0;
    n = 0;

    for ( /* void */ ; *in; in++) {
        c = (unsigned char) *in;

        if (c == ' ') {
            continue;
        }

        if (c == '=') {
            while (*in == '=') {
                in++;
            }

            if (*in != '\0') {
                return -1;
            }

            break;
        }

        if (c >= 'a' && c <= 'z') {
            c -= 32;
        }

        if (c >= 'A' && c <= 'Z') {
            d = c - 'A';

        } else if (c >= '2' && c <= '7') {
            d = c - '2' + 26;

        } else {
            return -1;
        }

        acc = (acc << 5) | (uint32_t) d;
        bits += 5;

        if (bits >= 8) {
            bits -= 8;

            if (n == size) {
                return -1;
            }

            out[n++] = (unsigned char) (acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }

    return (ssize_t) n;
}


/* RFC 3986: all but the unreserved characters percent-encoded */

static void
admin_print_uri_escaped(const char *s)
{
    for ( /* void */ ; *s; s++) {
        if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')
            || (*s >= '0' && *s <= '9') || *s == '-' || *s == '.'
            || *s == '_' || *s == '~')
        {
            putchar(*s);

        } else {
            printf("%%%02X", (unsigned char) *s);
        }
    }
}


static void
admin_usage(FILE *f)
{
    fprintf(f,
        "usage:\n"
        "  %1$s create-operator --username NAME\n"
        "      --role admin|onboarding|tenant_manager [--tenant SLUG]\n"
        "      [--password-file FILE] --totp-key FILE\n"
        "  %1$s verify-audit\n"
        "  %1$s totp --secret BASE32|- [--time T]\n"
        "  %1$s hash-password              (password on stdin)\n"
        "\n"
        "The database comes from the PG* environment (PGHOST, PGPORT,\n"
        "PGDATABASE, PGUSER).  Exit status: 0 ok, 1 refused or failed,\n"
        "2 usage, 3 database or system error.\n", admin_prog);
}
