/* fuzz_k8s_kubeconfig.c — the kubeconfig loader (lk_k8s_config_kubeconfig): the YAML
 * or JSON document, contexts, clusters and users by name, inline *-data in base64, file
 * paths made absolute against the kubeconfig's folder, the plugins it refuses.
 *
 * The loader reads a file: the input goes into a memory file and is read back as
 * /proc/self/fd/N (no ':' in it, so it is a list of one). The files a kubeconfig names
 * (certificate-authority, client-certificate, client-key, tokenFile) are only turned into
 * paths here, never opened (the client opens them later), so the input cannot make the
 * target read a file of the host. Each input is loaded with its current-context and with
 * the contexts "fuzz" and "" named.
 *
 * Checked on success: a server URL with its scheme and no trailing slash past it, the
 * source named, a certificate file only with a key file and inline ones likewise, and
 * absolute file paths. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/json.h"
#include "k8s/k8s.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The loader's own cap is 1 MiB; fuzz inputs are far smaller. */
#define FUZZ_KUBECONFIG_MAX (256u << 10)

static void
check_path(const char *p)
{
	if (p != NULL && p[0] != '/')
		abort();
}

static void
check(const struct lk_k8s_config *cfg)
{
	size_t n;

	if (cfg->server == NULL || cfg->source == NULL)
		abort();
	if (strncmp(cfg->server, "https://", 8) != 0 && strncmp(cfg->server, "http://", 7) != 0)
		abort();
	n = strlen(cfg->server);
	if (n > 8 && cfg->server[n - 1] == '/')
		abort();
	if ((cfg->cert_file == NULL) != (cfg->key_file == NULL) ||
	    (cfg->cert_pem == NULL) != (cfg->key_pem == NULL))
		abort();
	if ((cfg->ca_pem != NULL && strlen(cfg->ca_pem) > cfg->ca_pem_len) ||
	    (cfg->cert_pem != NULL && strlen(cfg->cert_pem) > cfg->cert_pem_len))
		abort();
	check_path(cfg->ca_file);
	check_path(cfg->cert_file);
	check_path(cfg->key_file);
	check_path(cfg->token_file);
}

static void
load(const char *path, const char *context)
{
	struct lk_k8s_config cfg;
	struct lk_error err = { 0 };

	lk_k8s_config_init(&cfg);
	if (lk_k8s_config_kubeconfig(path, context, &cfg, &err) == 0) {
		check(&cfg);
	} else {
		/* A failure leaves the configuration empty, with a message. */
		if (cfg.server != NULL || cfg.source != NULL || err.msg[0] == '\0')
			abort();
		lk_error_clear(&err);
	}
	lk_k8s_config_clear(&cfg);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];

	if (size > FUZZ_KUBECONFIG_MAX)
		return 0;
	if (fd < 0) {
		/* As `latchkey` does first thing in main(). */
		lk_json_wipe_on_free();
		if (lk_secret_init() < 0)
			abort();
		if ((fd = memfd_create("fuzz-kubeconfig", MFD_CLOEXEC)) < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	load(path, NULL);
	load(path, "fuzz");
	load(path, "");
	return 0;
}
