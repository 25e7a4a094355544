/* curl_floor.c — the memory floor of the broker's memory benchmark: a process that does
 * nothing but what every libcurl client does before it can speak to a backend.
 *
 *   curl_floor URL
 *
 * It is linked with libcurl alone (the Makefile has a rule of its own for it), initialises
 * it as the broker does (curl_global_init), makes one GET of URL on one easy handle and
 * keeps the handle (and so its connection) open. Then it prints "ready" on stdout and
 * waits for SIGTERM or SIGINT. Its VmRSS, next to the broker's, says how much of the
 * broker's resident memory is libcurl and the libraries it brings in, and how much is the
 * broker's own.
 *
 * Exit status: 0 after a signal, 1 when the request failed, 2 on usage errors.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

static size_t discard(char *data, size_t size, size_t n, void *arg)
{
	(void)data;
	(void)arg;
	return size * n;
}

int main(int argc, char **argv)
{
	CURL *c;
	CURLcode rc;
	long status = 0;
	sigset_t set;
	int sig;

	if (argc != 2 || strncmp(argv[1], "http", 4) != 0) {
		fprintf(stderr, "usage: curl_floor URL\n");
		return 2;
	}
	/* Block the signals before anything starts, then wait for one of them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "curl_floor: curl_global_init failed\n");
		return 1;
	}
	c = curl_easy_init();
	if (c == NULL) {
		fprintf(stderr, "curl_floor: curl_easy_init failed\n");
		return 1;
	}
	if (curl_easy_setopt(c, CURLOPT_URL, argv[1]) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L) != CURLE_OK) {
		fprintf(stderr, "curl_floor: setting the request up failed\n");
		return 1;
	}
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		fprintf(stderr, "curl_floor: GET %s: %s\n", argv[1], curl_easy_strerror(rc));
		return 1;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 499) {
		fprintf(stderr, "curl_floor: GET %s: HTTP %ld\n", argv[1], status);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	while (sigwait(&set, &sig) != 0)
		;
	curl_easy_cleanup(c);
	curl_global_cleanup();
	return 0;
}
