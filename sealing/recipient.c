/* recipient.c — the key a seal is made to: a certificate from a file or a URL, or an lk1
 * key file (sealing.h). */
#include "sealing/sealing.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

static int
fetch_cert(const char *url, char **ret, size_t *ret_len, struct lk_error *err)
{
	const struct lk_http_client_config cfg = {
		.timeout_ms = LK_SEALING_CERT_FETCH_TIMEOUT_MS, .redirects = 3,
	};
	const struct lk_http_request req = {
		.method = "GET", .url = url, .max_body = LK_SEALING_CERT_FETCH_MAX,
	};
	struct lk_http_response resp = { 0 };
	struct lk_http_client *c = NULL;
	int r;

	if ((r = lk_http_client_new(&cfg, &c, err)) < 0)
		return r;
	r = lk_http_perform(c, &req, &resp, err);
	if (r == -EMSGSIZE) {
		r = lk_error_set(err, -E2BIG, "%s: certificate larger than %u bytes", url,
				 LK_SEALING_CERT_FETCH_MAX);
		goto out;
	}
	if (r < 0) {
		lk_error_prefix(err, "%s", url);
		r = -EIO;
		goto out;
	}
	if (resp.status != 200) {
		r = lk_error_set(err, -EIO, "%s: HTTP status %ld", url, resp.status);
		goto out;
	}
	if (resp.body.len == 0) {
		r = lk_error_set(err, -EIO, "%s: empty response", url);
		goto out;
	}
	r = lk_buf_take(&resp.body, ret, ret_len);
out:
	lk_http_response_clear(&resp);
	lk_http_client_free(c);
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

