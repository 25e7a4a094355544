/* sync_load.c — the objects of the sync benchmark: NAMESPACES namespaces, each with a token
 * Secret, a SecretStore and PER_NS ExternalSecrets, reading PATHS backend paths between
 * them, and the paths themselves in the backend. Each namespace has PATHS / NAMESPACES paths
 * of its own (bench/NS/pNNNN), read by its ExternalSecrets in turn, so every path is read
 * by PER_NS / (PATHS / NAMESPACES) ExternalSecrets through the same SecretStore.
 * Requests go one after another over kept connections (libcurl), so the figure printed
 * at the end is the test API server's create rate too.
 *
 * With RECIPIENT (an lk1pub: line) every ExternalSecret asks for encryption at source.
 *
 * usage: sync_load KUBE_ADDR KUBE_TOKEN KUBE_CA DEV_ADDR DEV_TOKEN NAMESPACES PER_NS PATHS REFRESH [RECIPIENT]
 *        sync_load sealed KUBE_ADDR KUBE_TOKEN KUBE_CA CERT_FILE NAMESPACE COUNT VALUES
 * The second form seals COUNT Secrets of VALUES random 32-byte values each to the
 * certificate (the Bitnami format) and creates them as SealedSecrets in NAMESPACE.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "crypto/crypto.h"
#include "sealing/sealing.h"

static CURL *kube, *dev;
static struct curl_slist *kube_headers, *dev_headers;
static long failures;

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

static void
post(CURL *c, struct curl_slist *h, const char *url, const char *body)
{
	long st = 0;

	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	if (curl_easy_perform(c) != CURLE_OK ||
	    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st) != CURLE_OK || st >= 300) {
		if (failures++ < 5)
			fprintf(stderr, "sync_load: POST %s: %ld\n", url, st);
	}
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
sealed_main(int argc, char **argv)
{
	const char *ka = argv[2], *kt = argv[3], *ca = argv[4], *ns = argv[6];
	int count = atoi(argv[7]), values = atoi(argv[8]);
	struct lk_key *cert = NULL;
	struct lk_error err;
	char url[512], hdr[512], *pem;
	double t0, t1, seal_s = 0;
	FILE *fp;
	long len;

	if (count < 1 || values < 1 || values > 64) {
		fprintf(stderr, "sync_load sealed: COUNT >= 1 and VALUES 1 to 64\n");
		return 2;
	}
	if (lk_secret_init() < 0 || (fp = fopen(argv[5], "r")) == NULL) {
		fprintf(stderr, "sync_load sealed: %s: cannot read\n", argv[5]);
		return 1;
	}
	fseek(fp, 0, SEEK_END);
	len = ftell(fp);
	rewind(fp);
	pem = calloc(1, (size_t)len + 1);
	if (pem == NULL || fread(pem, 1, (size_t)len, fp) != (size_t)len ||
	    lk_key_rsa_from_pem(NULL, 0, pem, (size_t)len, false, &cert, &err) < 0) {
		fprintf(stderr, "sync_load sealed: %s: not a certificate\n", argv[5]);
		return 1;
	}
	fclose(fp);
	free(pem);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	kube = curl_easy_init();
	curl_easy_setopt(kube, CURLOPT_CAINFO, ca);
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", kt);
	kube_headers = curl_slist_append(kube_headers, hdr);
	kube_headers = curl_slist_append(kube_headers, "Content-Type: application/json");
	snprintf(url, sizeof(url), "%s/apis/latchkey.io/v1/namespaces/%s/sealedsecrets", ka, ns);
	t0 = now_s();
	for (int i = 0; i < count; i++) {
		const struct lk_seal_options o = { 0 };
		json_t *secret, *data = json_object(), *ss = NULL;
		char name[32], key[16], *body;
		double s0;

		for (int v = 0; v < values; v++) {
			unsigned char raw[32];
			char *b64 = NULL;

			randombytes_buf(raw, sizeof(raw));
			if (lk_b64_encode(raw, sizeof(raw), LK_B64_STD, &b64) < 0)
				return 1;
			snprintf(key, sizeof(key), "k%02d", v);
			json_object_set_new(data, key, json_string(b64));
			free(b64);
		}
		snprintf(name, sizeof(name), "ss%05d", i);
		secret = json_pack("{s:s, s:s, s:{s:s, s:s}, s:o}", "apiVersion", "v1", "kind", "Secret",
				   "metadata", "name", name, "namespace", ns, "data", data);
		s0 = now_s();
		if (lk_sealing_seal_secret(secret, "bench", cert, &o, &ss, &err) < 0) {
			fprintf(stderr, "sync_load sealed: %s\n", err.msg);
			return 1;
		}
		seal_s += now_s() - s0;
		body = json_dumps(ss, JSON_COMPACT);
		post(kube, kube_headers, url, body);
		free(body);
		json_decref(ss);
		json_decref(secret);
	}
	t1 = now_s();
	printf("sealed %d %d %.2f %.2f\n", count, values, t1 - t0, seal_s);
	printf("failures %ld\n", failures);
	lk_key_free(cert);
	curl_slist_free_all(kube_headers);
	curl_easy_cleanup(kube);
	curl_global_cleanup();
	return failures == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	char url[512], body[2048], hdr[512], b64tok[512];
	const char *ka, *kt, *ca, *da, *dt, *refresh, *rcpt;
	char enc[256] = "";
	int nns, per, paths, ppn;
	double t0, t1, t2;
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	if (argc == 9 && strcmp(argv[1], "sealed") == 0)
		return sealed_main(argc, argv);
	if (argc != 10 && argc != 11) {
		fprintf(stderr, "usage: sync_load KUBE_ADDR KUBE_TOKEN KUBE_CA DEV_ADDR DEV_TOKEN "
			"NAMESPACES PER_NS PATHS REFRESH [RECIPIENT]\n"
			"       sync_load sealed KUBE_ADDR KUBE_TOKEN KUBE_CA CERT_FILE NAMESPACE COUNT VALUES\n");
		return 2;
	}
	rcpt = argc == 11 ? argv[10] : NULL;
	ka = argv[1]; kt = argv[2]; ca = argv[3]; da = argv[4]; dt = argv[5];
	nns = atoi(argv[6]); per = atoi(argv[7]); paths = atoi(argv[8]); refresh = argv[9];
	if (nns < 1 || nns > 999 || per < 1 || paths < nns || paths % nns != 0) {
		fprintf(stderr, "sync_load: expected 1 to 999 namespaces, PER_NS >= 1 and PATHS a "
			"multiple of NAMESPACES\n");
		return 2;
	}
	ppn = paths / nns;
	if (rcpt != NULL)
		snprintf(enc, sizeof(enc), ",\"encryption\":{\"recipient\":\"%s\"}", rcpt);
	/* base64 of the backend token, for the token Secrets. */
	{
		size_t n = strlen(dt), o = 0;

		for (size_t i = 0; i < n; i += 3) {
			unsigned v = (unsigned)(unsigned char)dt[i] << 16 |
				     (i + 1 < n ? (unsigned)(unsigned char)dt[i + 1] << 8 : 0) |
				     (i + 2 < n ? (unsigned)(unsigned char)dt[i + 2] : 0);

			b64tok[o++] = tbl[v >> 18 & 63];
			b64tok[o++] = tbl[v >> 12 & 63];
			b64tok[o++] = i + 1 < n ? tbl[v >> 6 & 63] : '=';
			b64tok[o++] = i + 2 < n ? tbl[v & 63] : '=';
		}
		b64tok[o] = '\0';
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	kube = curl_easy_init();
	dev = curl_easy_init();
	curl_easy_setopt(kube, CURLOPT_CAINFO, ca);
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", kt);
	kube_headers = curl_slist_append(kube_headers, hdr);
	kube_headers = curl_slist_append(kube_headers, "Content-Type: application/json");
	snprintf(hdr, sizeof(hdr), "X-Vault-Token: %s", dt);
	dev_headers = curl_slist_append(dev_headers, hdr);

	t0 = now_s();
	for (int p = 0; p < paths; p++) {
		snprintf(url, sizeof(url), "%s/v1/secret/data/bench/ns%03d/p%04d", da, p / ppn, p);
		snprintf(body, sizeof(body), "{\"data\":{\"user\":\"u%04d\",\"password\":\"pw-%04d-%08x\"}}",
			 p, p, (unsigned)rand());
		post(dev, dev_headers, url, body);
	}
	t1 = now_s();
	for (int n = 0; n < nns; n++) {
		snprintf(url, sizeof(url), "%s/api/v1/namespaces", ka);
		snprintf(body, sizeof(body), "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"ns%03d\"}}", n);
		post(kube, kube_headers, url, body);
		snprintf(url, sizeof(url), "%s/api/v1/namespaces/ns%03d/secrets", ka, n);
		snprintf(body, sizeof(body), "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"vault-token\"},"
			 "\"data\":{\"token\":\"%s\"}}", b64tok);
		post(kube, kube_headers, url, body);
		snprintf(url, sizeof(url), "%s/apis/latchkey.io/v1/namespaces/ns%03d/secretstores", ka, n);
		snprintf(body, sizeof(body), "{\"apiVersion\":\"latchkey.io/v1\",\"kind\":\"SecretStore\",\"metadata\":"
			 "{\"name\":\"vault\"},\"spec\":{\"provider\":{\"vault\":{\"server\":\"%s\",\"path\":\"secret\","
			 "\"auth\":{\"tokenSecretRef\":{\"name\":\"vault-token\",\"key\":\"token\"}}}}}}", da);
		post(kube, kube_headers, url, body);
	}
	for (int n = 0; n < nns; n++) {
		for (int i = 0; i < per; i++) {
			int idx = n * per + i, path = n * ppn + i % ppn;

			snprintf(url, sizeof(url), "%s/apis/latchkey.io/v1/namespaces/ns%03d/externalsecrets", ka, n);
			snprintf(body, sizeof(body), "{\"apiVersion\":\"latchkey.io/v1\",\"kind\":\"ExternalSecret\","
				 "\"metadata\":{\"name\":\"es%05d\"},\"spec\":{\"refreshInterval\":\"%s\","
				 "\"secretStoreRef\":{\"name\":\"vault\"},\"target\":{\"name\":\"out%05d\"%s},"
				 "\"data\":[{\"secretKey\":\"user\",\"remoteRef\":{\"key\":\"bench/ns%03d/p%04d\",\"property\":\"user\"}},"
				 "{\"secretKey\":\"password\",\"remoteRef\":{\"key\":\"bench/ns%03d/p%04d\","
				 "\"property\":\"password\"}}]}}",
				 idx, refresh, idx, enc, n, path, n, path);
			post(kube, kube_headers, url, body);
		}
	}
	t2 = now_s();
	printf("backend_paths %d %.2f\n", paths, t1 - t0);
	printf("objects %d %.2f %.0f\n", nns * (3 + per), t2 - t1, (double)(nns * (3 + per)) / (t2 - t1));
	printf("failures %ld\n", failures);
	curl_slist_free_all(kube_headers);
	curl_slist_free_all(dev_headers);
	curl_easy_cleanup(kube);
	curl_easy_cleanup(dev);
	curl_global_cleanup();
	return failures == 0 ? 0 : 1;
}
