/* recipient.c — the key a seal is made to: a certificate from a file or a URL, or an lk1
 * key file (sealing.h). */
#include "sealing/sealing.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct fetch {
	char *data;
	size_t len;
	bool too_big;
};

static size_t
fetch_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct fetch *f = arg;
	size_t n = size * nmemb;
	char *nd;

	if (f->len + n > LK_SEALING_CERT_FETCH_MAX) {
		f->too_big = true;
		return 0;
	}
	nd = realloc(f->data, f->len + n + 1);
	if (nd == NULL)
		return 0;
	f->data = nd;
	memcpy(f->data + f->len, p, n);
	f->len += n;
	f->data[f->len] = '\0';
	return n;
}

static int
fetch_cert(const char *url, char **ret, size_t *ret_len, struct lk_error *err)
{
	struct fetch f = { NULL, 0, false };
	long status = 0;
	CURLcode rc;
	CURL *c;
	int r;

	c = curl_easy_init();
	if (c == NULL)
		return lk_error_set(err, -ENOMEM, "cannot start libcurl");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)(LK_SEALING_CERT_FETCH_TIMEOUT_MS / 1000));
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fetch_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &f);
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	if (f.too_big) {
		r = lk_error_set(err, -E2BIG, "%s: certificate larger than %u bytes", url,
				 LK_SEALING_CERT_FETCH_MAX);
		goto out;
	}
	if (rc != CURLE_OK) {
		r = lk_error_set(err, -EIO, "%s: %s", url, curl_easy_strerror(rc));
		goto out;
	}
	if (status != 200) {
		r = lk_error_set(err, -EIO, "%s: HTTP status %ld", url, status);
		goto out;
	}
	if (f.data == NULL) {
		r = lk_error_set(err, -EIO, "%s: empty response", url);
		goto out;
	}
	*ret = f.data;
	*ret_len = f.len;
	f.data = NULL;
	r = 0;
out:
	free(f.data);
	return r;
}

int
lk_sealing_load_recipient(const char *source, bool lk1, struct lk_key **ret, struct lk_error *err)
{
	struct lk_secret *file = NULL;
	char *fetched = NULL;
	const char *text;
	size_t len = 0;
	int r;

	if (strncmp(source, "http://", 7) == 0 || strncmp(source, "https://", 8) == 0) {
		r = fetch_cert(source, &fetched, &len, err);
		if (r < 0)
			return r;
		text = fetched;
	} else {
		r = lk_secret_read_file(source, LK_KEYFILE_MAX, false, &file);
		if (r < 0)
			return lk_error_set(err, r, "%s: %s", source,
					    r == -E2BIG ? "too large for a key file" : strerror(-r));
		text = lk_secret_cstr(file);
		len = lk_secret_len(file);
	}
	if (lk1) {
		r = lk_key_x25519_parse(text, len, ret, err);
	} else {
		if (strstr(text, "-----BEGIN CERTIFICATE-----") == NULL)
			r = lk_error_set(err, -EINVAL, "no PEM certificate found");
		else
			r = lk_key_rsa_from_pem(NULL, 0, text, len, false, ret, err);
	}
	if (r < 0)
		lk_error_prefix(err, "%s", source);
	lk_secret_free(file);
	free(fetched);
	return r;
}

