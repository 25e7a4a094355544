/* sync_load.c — the objects of the sync benchmark: NAMESPACES namespaces, each with a token
 * Secret, a SecretStore and PER_NS ExternalSecrets, reading PATHS backend paths between
 * them, and the paths themselves in the backend. Each namespace has PATHS / NAMESPACES paths
 * of its own (bench/NS/pNNNN), read by its ExternalSecrets in turn, so every path is read
 * by PER_NS / (PATHS / NAMESPACES) ExternalSecrets through the same SecretStore.
 * Requests go one after another over kept connections (libcurl), so the figure printed
 * at the end is the test API server's create rate too.
 *
 * usage: sync_load KUBE_ADDR KUBE_TOKEN KUBE_CA DEV_ADDR DEV_TOKEN NAMESPACES PER_NS PATHS REFRESH
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

int
main(int argc, char **argv)
{
	char url[512], body[2048], hdr[512], b64tok[512];
	const char *ka, *kt, *ca, *da, *dt, *refresh;
	int nns, per, paths, ppn;
	double t0, t1, t2;
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	if (argc != 10) {
		fprintf(stderr, "usage: sync_load KUBE_ADDR KUBE_TOKEN KUBE_CA DEV_ADDR DEV_TOKEN "
			"NAMESPACES PER_NS PATHS REFRESH\n");
		return 2;
	}
	ka = argv[1]; kt = argv[2]; ca = argv[3]; da = argv[4]; dt = argv[5];
	nns = atoi(argv[6]); per = atoi(argv[7]); paths = atoi(argv[8]); refresh = argv[9];
	if (nns < 1 || nns > 999 || per < 1 || paths < nns || paths % nns != 0) {
		fprintf(stderr, "sync_load: expected 1 to 999 namespaces, PER_NS >= 1 and PATHS a "
			"multiple of NAMESPACES\n");
		return 2;
	}
	ppn = paths / nns;
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
				 "\"secretStoreRef\":{\"name\":\"vault\"},\"target\":{\"name\":\"out%05d\"},"
				 "\"data\":[{\"secretKey\":\"user\",\"remoteRef\":{\"key\":\"bench/ns%03d/p%04d\",\"property\":\"user\"}},"
				 "{\"secretKey\":\"password\",\"remoteRef\":{\"key\":\"bench/ns%03d/p%04d\","
				 "\"property\":\"password\"}}]}}",
				 idx, refresh, idx, n, path, n, path);
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
