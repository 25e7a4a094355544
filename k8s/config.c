/* config.c — where the Kubernetes API is and how to authenticate: a pod's service
 * account, or a kubeconfig file (k8s.h). */
#include "k8s/k8s.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/file.h"
#include "crypto/crypto.h"
#include "manifest/manifest.h"

/* The largest kubeconfig read. */
#define KUBECONFIG_MAX (1u << 20)
/* The most files in a $KUBECONFIG list. */
#define KUBECONFIG_FILES_MAX 16
/* The largest namespace or CA file of a service account read. */
#define SA_FILE_MAX (256u << 10)

void
lk_k8s_config_init(struct lk_k8s_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
}

void
lk_k8s_config_clear(struct lk_k8s_config *cfg)
{
	free(cfg->server);
	free(cfg->ca_file);
	free(cfg->ca_pem);
	free(cfg->cert_file);
	free(cfg->key_file);
	free(cfg->cert_pem);
	lk_secret_free(cfg->key_pem);
	free(cfg->token_file);
	lk_secret_free(cfg->token);
	free(cfg->server_name);
	free(cfg->namespace);
	free(cfg->source);
	memset(cfg, 0, sizeof(*cfg));
}

static int
set_str(char **dst, const char *s)
{
	char *copy = NULL;

	if (s != NULL && (copy = strdup(s)) == NULL)
		return -ENOMEM;
	free(*dst);
	*dst = copy;
	return 0;
}

/* ---- in-cluster --------------------------------------------------------------------- */

int
lk_k8s_config_in_cluster(const char *sa_dir, struct lk_k8s_config *cfg, struct lk_error *err)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	char path[1024], url[600];
	struct lk_buf ns;
	int r;

	if (sa_dir == NULL)
		sa_dir = LK_K8S_SA_DIR;
	if (host == NULL || host[0] == '\0' || port == NULL || port[0] == '\0')
		return lk_error_set(err, -ENOENT, "not in a cluster: KUBERNETES_SERVICE_HOST and "
				    "KUBERNETES_SERVICE_PORT are not set (give --kubeconfig or set KUBECONFIG)");
	if (strlen(host) > 255 || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port))
		return lk_error_set(err, -EINVAL, "KUBERNETES_SERVICE_HOST/PORT: not a host and a port");
	/* net.JoinHostPort: an IPv6 address goes in brackets. */
	snprintf(url, sizeof(url), strchr(host, ':') != NULL ? "https://[%s]:%s" : "https://%s:%s",
		 host, port);
	lk_k8s_config_clear(cfg);
	if ((r = set_str(&cfg->server, url)) < 0 || (r = set_str(&cfg->source, "in-cluster")) < 0)
		goto nomem;
	snprintf(path, sizeof(path), "%s/token", sa_dir);
	if (access(path, R_OK) != 0) {
		r = lk_error_set(err, -errno, "%s: %s (the service account token)", path,
				 strerror(errno));
		goto fail;
	}
	if ((r = set_str(&cfg->token_file, path)) < 0)
		goto nomem;
	snprintf(path, sizeof(path), "%s/ca.crt", sa_dir);
	if (access(path, R_OK) != 0) {
		r = lk_error_set(err, -errno, "%s: %s (the cluster's CA)", path, strerror(errno));
		goto fail;
	}
	if ((r = set_str(&cfg->ca_file, path)) < 0)
		goto nomem;
	snprintf(path, sizeof(path), "%s/namespace", sa_dir);
	lk_buf_init(&ns, SA_FILE_MAX, false);
	if (lk_file_read(path, false, &ns, NULL) == 0) {
		char *p = ns.data, *e = ns.data + ns.len;

		while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
			p++;
		while (e > p && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\r' || e[-1] == '\t'))
			e--;
		*e = '\0';
		r = p[0] != '\0' ? set_str(&cfg->namespace, p) : 0;
	}
	lk_buf_free(&ns);
	if (r < 0)
		goto nomem;
	return 0;
nomem:
	r = lk_error_set(err, -ENOMEM, "out of memory");
fail:
	lk_k8s_config_clear(cfg);
	return r;
}

/* ---- kubeconfig --------------------------------------------------------------------- */

struct kubeconfig {
	char *path;
	char *dir;              /* relative paths are from here */
	json_t *root;
};

static const char *
str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* The entry {name: NAME, KIND: {...}} of list KIND+"s" in the first file that has it. */
static const json_t *
find_named(struct kubeconfig *files, size_t n, const char *list, const char *kind,
	   const char *name, const struct kubeconfig **ret_file)
{
	for (size_t f = 0; f < n; f++) {
		const json_t *arr = json_object_get(files[f].root, list), *it;
		size_t i;

		json_array_foreach(arr, i, it) {
			const char *nm = str(it, "name");

			if (nm != NULL && strcmp(nm, name) == 0 && json_is_object(json_object_get(it, kind))) {
				*ret_file = &files[f];
				return json_object_get(it, kind);
			}
		}
	}
	return NULL;
}

/* A path from the kubeconfig, made absolute against its folder. */
static int
file_path(const struct kubeconfig *kc, const char *p, char **dst)
{
	char *out;

	if (p == NULL || p[0] == '\0')
		return 0;
	if (p[0] == '/')
		return set_str(dst, p);
	if (asprintf(&out, "%s/%s", kc->dir, p) < 0)
		return -ENOMEM;
	free(*dst);
	*dst = out;
	return 0;
}

/* Inline *-data: base64 of PEM. */
static int
data_field(const char *b64, char **ret, size_t *ret_len)
{
	unsigned char *raw = NULL;
	size_t n = 0;
	int r;

	if ((r = lk_b64_decode_raw(b64, strlen(b64), LK_B64_STD, &raw, &n)) < 0)
		return r;
	free(*ret);
	*ret = malloc(n + 1);
	if (*ret == NULL) {
		free(raw);
		return -ENOMEM;
	}
	memcpy(*ret, raw, n);
	(*ret)[n] = '\0';
	*ret_len = n;
	free(raw);
	return 0;
}

static void
kubeconfigs_free(struct kubeconfig *files, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(files[i].path);
		free(files[i].dir);
		json_decref(files[i].root);
	}
}

static int
kubeconfig_read(const char *path, struct kubeconfig *kc, struct lk_error *err)
{
	struct lk_buf text;
	char *copy;
	int r;

	memset(kc, 0, sizeof(*kc));
	/* A kubeconfig may hold a token or a key: a wipe buffer. */
	lk_buf_init(&text, KUBECONFIG_MAX, true);
	if ((r = lk_file_read(path, false, &text, err)) < 0)
		goto out;
	if ((r = lk_manifest_parse(text.data, text.len, path, &kc->root, NULL, err)) < 0)
		goto out;
	if ((kc->path = strdup(path)) == NULL || (copy = strdup(path)) == NULL) {
		r = lk_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	kc->dir = strdup(dirname(copy));
	free(copy);
	r = kc->dir != NULL ? 0 : lk_error_set(err, -ENOMEM, "out of memory");
out:
	lk_buf_free(&text);
	return r;
}

int
lk_k8s_config_kubeconfig(const char *path, const char *context, struct lk_k8s_config *cfg,
			 struct lk_error *err)
{
	struct kubeconfig files[KUBECONFIG_FILES_MAX];
	const struct kubeconfig *cf = NULL, *uf = NULL, *xf = NULL;
	const json_t *ctx, *cluster, *user, *v;
	const char *cluster_name, *user_name, *s;
	char *list = NULL, *save = NULL, *one;
	size_t n = 0;
	int r;

	lk_k8s_config_clear(cfg);
	if (path == NULL || path[0] == '\0')
		return lk_error_set(err, -EINVAL, "no kubeconfig file given");
	if ((list = strdup(path)) == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	for (one = strtok_r(list, ":", &save); one != NULL; one = strtok_r(NULL, ":", &save)) {
		if (n >= KUBECONFIG_FILES_MAX) {
			r = lk_error_set(err, -E2BIG, "KUBECONFIG: more than %d files",
					 KUBECONFIG_FILES_MAX);
			goto out;
		}
		if ((r = kubeconfig_read(one, &files[n], err)) < 0)
			goto out;
		n++;
	}
	if (n == 0) {
		r = lk_error_set(err, -EINVAL, "no kubeconfig file given");
		goto out;
	}
	if (context == NULL) {
		for (size_t i = 0; i < n && context == NULL; i++) {
			s = str(files[i].root, "current-context");
			if (s != NULL && s[0] != '\0')
				context = s;
		}
	}
	if (context == NULL) {
		r = lk_error_set(err, -EINVAL, "%s: no current-context (name one with --context)", path);
		goto out;
	}
	if ((ctx = find_named(files, n, "contexts", "context", context, &xf)) == NULL) {
		r = lk_error_set(err, -ENOENT, "%s: no context named \"%.100s\"", path, context);
		goto out;
	}
	cluster_name = str(ctx, "cluster");
	user_name = str(ctx, "user");
	if (cluster_name == NULL ||
	    (cluster = find_named(files, n, "clusters", "cluster", cluster_name, &cf)) == NULL) {
		r = lk_error_set(err, -ENOENT, "%s: context \"%.100s\": cluster \"%.100s\" not found",
				 xf->path, context, cluster_name != NULL ? cluster_name : "");
		goto out;
	}
	user = NULL;
	if (user_name != NULL &&
	    (user = find_named(files, n, "users", "user", user_name, &uf)) == NULL) {
		r = lk_error_set(err, -ENOENT, "%s: context \"%.100s\": user \"%.100s\" not found",
				 xf->path, context, user_name);
		goto out;
	}
	s = str(cluster, "server");
	if (s == NULL || (strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0)) {
		r = lk_error_set(err, -EINVAL, "%s: clusters[%s].cluster.server: expected an "
				 "https:// URL", cf->path, cluster_name);
		goto out;
	}
	r = -ENOMEM;
	if (set_str(&cfg->server, s) < 0 || set_str(&cfg->source, cf->path) < 0)
		goto nomem;
	while (strlen(cfg->server) > 8 && cfg->server[strlen(cfg->server) - 1] == '/')
		cfg->server[strlen(cfg->server) - 1] = '\0';
	if (file_path(cf, str(cluster, "certificate-authority"), &cfg->ca_file) < 0)
		goto nomem;
	if ((s = str(cluster, "certificate-authority-data")) != NULL &&
	    (r = data_field(s, &cfg->ca_pem, &cfg->ca_pem_len)) < 0) {
		r = lk_error_set(err, r, "%s: clusters[%s].cluster.certificate-authority-data: "
				 "expected base64 of PEM", cf->path, cluster_name);
		goto out;
	}
	if (set_str(&cfg->server_name, str(cluster, "tls-server-name")) < 0)
		goto nomem;
	v = json_object_get(cluster, "insecure-skip-tls-verify");
	cfg->insecure = json_is_true(v) || (json_is_string(v) && strcmp(json_string_value(v), "true") == 0);
	if (set_str(&cfg->namespace, str(ctx, "namespace")) < 0)
		goto nomem;
	if (user != NULL) {
		if (json_object_get(user, "exec") != NULL || json_object_get(user, "auth-provider") != NULL) {
			r = lk_error_set(err, -ENOTSUP, "%s: users[%s]: exec and auth-provider plugins "
					 "are not supported; use a token, a token file or a client certificate",
					 uf->path, user_name);
			goto out;
		}
		if (file_path(uf, str(user, "client-certificate"), &cfg->cert_file) < 0 ||
		    file_path(uf, str(user, "client-key"), &cfg->key_file) < 0 ||
		    file_path(uf, str(user, "tokenFile"), &cfg->token_file) < 0)
			goto nomem;
		if ((s = str(user, "client-certificate-data")) != NULL &&
		    (r = data_field(s, &cfg->cert_pem, &cfg->cert_pem_len)) < 0) {
			r = lk_error_set(err, r, "%s: users[%s].user.client-certificate-data: expected "
					 "base64 of PEM", uf->path, user_name);
			goto out;
		}
		if ((s = str(user, "client-key-data")) != NULL &&
		    (r = lk_b64_decode(s, strlen(s), LK_B64_STD, &cfg->key_pem)) < 0) {
			r = lk_error_set(err, r, "%s: users[%s].user.client-key-data: expected base64 "
					 "of PEM", uf->path, user_name);
			goto out;
		}
		if ((s = str(user, "token")) != NULL && (cfg->token = lk_secret_from_str(s)) == NULL)
			goto nomem;
		if ((cfg->cert_file == NULL) != (cfg->key_file == NULL) ||
		    (cfg->cert_pem == NULL) != (cfg->key_pem == NULL)) {
			r = lk_error_set(err, -EINVAL, "%s: users[%s]: a client certificate needs its "
					 "key and a key its certificate", uf->path, user_name);
			goto out;
		}
	}
	r = 0;
	goto out;
nomem:
	r = lk_error_set(err, -ENOMEM, "out of memory");
out:
	if (r < 0)
		lk_k8s_config_clear(cfg);
	kubeconfigs_free(files, n);
	free(list);
	return r;
}

int
lk_k8s_config_load(const char *kubeconfig, struct lk_k8s_config *cfg, struct lk_error *err)
{
	const char *env = getenv("KUBECONFIG");

	if (kubeconfig != NULL && kubeconfig[0] != '\0')
		return lk_k8s_config_kubeconfig(kubeconfig, NULL, cfg, err);
	if (env != NULL && env[0] != '\0')
		return lk_k8s_config_kubeconfig(env, NULL, cfg, err);
	return lk_k8s_config_in_cluster(NULL, cfg, err);
}
