/* bench_seal.c — sealing throughput: seal and open per second for lk1 and the Bitnami
 * format (RSA-4096, as keygen makes it), and the time to seal a 200-key Secret.
 * usage: bench_seal [SECONDS_PER_FIGURE] (default 2). Prints one line per figure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/crypto.h"

/* The size of each sealed value: a typical password or token. */
#define BENCH_VALUE_LEN 64
/* The keys in the "large Secret" figure. */
#define BENCH_SECRET_KEYS 200

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
fail(const char *what, const struct lk_error *err)
{
	fprintf(stderr, "bench_seal: %s: %s\n", what, err ? err->msg : "");
	exit(1);
}

static void
bench_key(const char *name, const struct lk_key *k, struct lk_keyset *ks, double seconds)
{
	unsigned char value[BENCH_VALUE_LEN];
	struct lk_error err;
	char *ct = NULL;
	double t0, t;
	long n;

	memset(value, 'v', sizeof(value));
	t0 = now();
	for (n = 0; (t = now()) - t0 < seconds; n++) {
		free(ct);
		ct = NULL;
		if (lk_key_seal(k, "app/db/password", value, sizeof(value), &ct, &err) != 0)
			fail("seal", &err);
	}
	printf("%-8s seal  %10.0f /s  (%d-byte values)\n", name, (double)n / (t - t0), BENCH_VALUE_LEN);
	t0 = now();
	for (n = 0; (t = now()) - t0 < seconds; n++) {
		struct lk_secret *pt = NULL;

		if (lk_keyset_open(ks, "app/db/password", ct, strlen(ct), &pt, &err) != 0)
			fail("open", &err);
		lk_secret_free(pt);
	}
	printf("%-8s open  %10.0f /s\n", name, (double)n / (t - t0));
	t0 = now();
	for (int i = 0; i < BENCH_SECRET_KEYS; i++) {
		char label[64];

		snprintf(label, sizeof(label), "app/db/key%d", i);
		free(ct);
		ct = NULL;
		if (lk_key_seal(k, label, value, sizeof(value), &ct, &err) != 0)
			fail("seal", &err);
	}
	printf("%-8s seal a %d-key Secret: %.1f ms\n", name, BENCH_SECRET_KEYS, (now() - t0) * 1e3);
	free(ct);
}

int
main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 2.0;
	struct lk_keyset *rsa_set = lk_keyset_new(), *x_set = lk_keyset_new();
	struct lk_key *rsa = NULL, *x = NULL;
	struct lk_error err;
	double t0;

	if (seconds <= 0)
		seconds = 2.0;
	if (lk_secret_init() < 0 || rsa_set == NULL || x_set == NULL)
		fail("setup", NULL);
	t0 = now();
	if (lk_key_rsa_generate(LK_RSA_BITS_DEFAULT, "bench", 1, &rsa, &err) != 0)
		fail("RSA key", &err);
	printf("keygen   RSA-%d + certificate: %.0f ms\n", LK_RSA_BITS_DEFAULT, (now() - t0) * 1e3);
	if (lk_key_x25519_generate(&x) != 0)
		fail("X25519 key", NULL);
	if (lk_keyset_add_take(rsa_set, rsa) != 0 || lk_keyset_add_take(x_set, x) != 0)
		fail("key set", NULL);
	bench_key("lk1", x, x_set, seconds);
	bench_key("bitnami", rsa, rsa_set, seconds);
	lk_keyset_free(rsa_set);
	lk_keyset_free(x_set);
	return 0;
}
