/* config.c — the broker's JSON configuration: parse, validate, report where. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"
#include "common/metrics.h"
#include "common/config.h"
#include "common/json.h"
#include "common/log.h"

/* A duration no longer than BROKER_DURATION_MAX_MS; key absent leaves *ret as it is. */
static int
bounded_duration(struct lk_cfg *c, const json_t *obj, const char *key, int64_t *ret)
{
	int64_t ms = *ret;
	int rc;

	if ((rc = lk_cfg_duration(c, obj, key, false, &ms)) < 0)
		return rc;
	if (ms > BROKER_DURATION_MAX_MS) {
		size_t mark = lk_cfg_push_key(c, key);

		rc = lk_cfg_fail(c, "expected a duration of at most 720h");
		lk_cfg_pop(c, mark);
		return rc;
	}
	*ret = ms;
	return 0;
}

static char *
dup_or_fail(struct lk_cfg *c, const char *s, int *rc)
{
	char *d = strdup(s);

	if (d == NULL)
		*rc = lk_error_set(c->err, -ENOMEM, "%s: out of memory", c->file);
	return d;
}

bool
broker_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > BROKER_NAME_MAX || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.'))
			return false;
	}
	return true;
}

/* An array of small non-negative integers (uids or gids). */
static int
parse_ids(struct lk_cfg *c, const json_t *obj, const char *key, uint32_t **ret, size_t *ret_n)
{
	json_t *arr = json_object_get(obj, key);
	uint32_t *ids = NULL;
	size_t mark, n, i;
	json_t *v;
	int rc = 0;

	if (arr == NULL)
		return 0;
	mark = lk_cfg_push_key(c, key);
	if (!json_is_array(arr)) {
		rc = lk_cfg_fail(c, "expected an array of integers");
		goto out;
	}
	n = json_array_size(arr);
	if (n > BROKER_ALLOW_MAX) {
		rc = lk_cfg_fail(c, "more than %d entries", BROKER_ALLOW_MAX);
		goto out;
	}
	ids = calloc(n ? n : 1, sizeof(*ids));
	if (ids == NULL) {
		rc = lk_error_set(c->err, -ENOMEM, "%s: out of memory", c->file);
		goto out;
	}
	json_array_foreach(arr, i, v) {
		if (!json_is_integer(v)) {
			rc = lk_cfg_fail(c, "expected an array of integers");
			goto out;
		}
		if (json_integer_value(v) < 0 || json_integer_value(v) > 0x7fffffffLL) {
			size_t m2 = lk_cfg_push_index(c, i);

			rc = lk_cfg_fail(c, "expected an id between 0 and 2147483647");
			lk_cfg_pop(c, m2);
			goto out;
		}
		ids[i] = (uint32_t)json_integer_value(v);
	}
	*ret = ids;
	*ret_n = n;
	ids = NULL;
out:
	free(ids);
	lk_cfg_pop(c, mark);
	return rc;
}

/* A signal name, with or without "SIG". reload_only: only the three a process can take
 * and keep running (HUP, USR1, USR2, listed first below); TERM, INT and QUIT stop it. */
static int
parse_signal(struct lk_cfg *c, const json_t *obj, const char *key, bool reload_only, int *ret)
{
	static const struct { const char *name; int sig; } sigs[] = {
		{ "HUP", SIGHUP }, { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 },
		{ "TERM", SIGTERM }, { "INT", SIGINT }, { "QUIT", SIGQUIT },
	};
	const size_t n = reload_only ? 3 : sizeof(sigs) / sizeof(sigs[0]);
	const char *s = NULL;
	int rc;

	rc = lk_cfg_string(c, obj, key, false, &s);
	if (rc < 0 || s == NULL)
		return rc;
	if (strncmp(s, "SIG", 3) == 0)
		s += 3;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(s, sigs[i].name) == 0) {
			*ret = sigs[i].sig;
			return 0;
		}
	}
	{
		size_t mark = lk_cfg_push_key(c, key);

		rc = lk_cfg_fail(c, reload_only ? "expected one of HUP, USR1, USR2 (a signal the "
				 "command keeps running through; TERM, INT and QUIT would stop it)" :
				 "expected one of HUP, USR1, USR2, TERM, INT, QUIT");
		lk_cfg_pop(c, mark);
	}
	return rc;
}

static void
file_spec_free(struct broker_file_spec *fs)
{
	if (fs == NULL)
		return;
	free(fs->path);
	free(fs->template_text);
	free(fs->origin);
	broker_template_free(fs->template);
	free(fs->pidfile);
	free(fs->process);
	free(fs);
}

/* A secret's file object, or (secret SIZE_MAX) an entry of templates[]: the same keys but
 * for the destination and the format, which is always a template there. */
static int
parse_file(struct lk_cfg *c, const json_t *obj, size_t secret, struct broker_file_spec **ret)
{
	static const char *const keys[] = { "path", "format", "template", "template_file",
		"mode", "owner", "group", "pidfile", "signal", "process", "process_uid", "dialect",
		NULL };
	static const char *const template_keys[] = { "destination", "template",
		"template_file", "mode", "owner", "group", "pidfile", "signal", "process",
		"process_uid", NULL };
	const char *path_key = secret == SIZE_MAX ? "destination" : "path";
	struct broker_file_spec *fs;
	const char *s = NULL, *tpl = NULL, *tpl_file = NULL;
	int64_t id;
	int rc;

	fs = calloc(1, sizeof(*fs));
	if (fs == NULL)
		return lk_error_set(c->err, -ENOMEM, "%s: out of memory", c->file);
	fs->mode = 0400;
	fs->owner = (uid_t)-1;
	fs->group = (gid_t)-1;
	fs->signal = SIGHUP;
	fs->process_uid = (uid_t)-1;
	fs->secret = secret;
	if ((rc = lk_cfg_keys(c, obj, secret == SIZE_MAX ? template_keys : keys)) < 0)
		goto out;
	if ((rc = lk_cfg_string(c, obj, path_key, true, &s)) < 0)
		goto out;
	if (s[0] != '/' || strlen(s) > BROKER_FILE_PATH_MAX) {
		size_t mark = lk_cfg_push_key(c, path_key);

		rc = lk_cfg_fail(c, "expected an absolute path of at most %d bytes",
				 BROKER_FILE_PATH_MAX);
		lk_cfg_pop(c, mark);
		goto out;
	}
	if ((fs->path = dup_or_fail(c, s, &rc)) == NULL)
		goto out;
	s = secret == SIZE_MAX ? "template" : "json";
	if ((rc = lk_cfg_string(c, obj, "format", false, &s)) < 0)
		goto out;
	if (strcmp(s, "json") == 0)
		fs->format = BROKER_FORMAT_JSON;
	else if (strcmp(s, "env") == 0)
		fs->format = BROKER_FORMAT_ENV;
	else if (strcmp(s, "template") == 0)
		fs->format = BROKER_FORMAT_TEMPLATE;
	else {
		size_t mark = lk_cfg_push_key(c, "format");

		rc = lk_cfg_fail(c, "expected \"json\", \"env\" or \"template\"");
		lk_cfg_pop(c, mark);
		goto out;
	}
	s = NULL;
	if ((rc = lk_cfg_string(c, obj, "dialect", false, &s)) < 0)
		goto out;
	if (s != NULL) {
		size_t mark = lk_cfg_push_key(c, "dialect");

		if (fs->format != BROKER_FORMAT_ENV)
			rc = lk_cfg_fail(c, "a dialect is for format \"env\" only");
		else if (strcmp(s, "portable") == 0)
			fs->dialect = BROKER_ENV_PORTABLE;
		else if (strcmp(s, "systemd") == 0)
			fs->dialect = BROKER_ENV_SYSTEMD;
		else if (strcmp(s, "docker") == 0)
			fs->dialect = BROKER_ENV_DOCKER;
		else
			rc = lk_cfg_fail(c, "expected \"portable\", \"systemd\" or \"docker\"");
		lk_cfg_pop(c, mark);
		if (rc < 0)
			goto out;
	}
	if ((rc = lk_cfg_string(c, obj, "template", false, &tpl)) < 0 ||
	    (rc = lk_cfg_string(c, obj, "template_file", false, &tpl_file)) < 0)
		goto out;
	if (fs->format == BROKER_FORMAT_TEMPLATE) {
		if ((tpl == NULL) == (tpl_file == NULL)) {
			rc = lk_cfg_fail(c, "format \"template\" needs exactly one of template "
					 "and template_file");
			goto out;
		}
		if (tpl != NULL) {
			if (strlen(tpl) > BROKER_TEMPLATE_MAX) {
				size_t mark = lk_cfg_push_key(c, "template");

				rc = lk_cfg_fail(c, "longer than %u bytes", BROKER_TEMPLATE_MAX);
				lk_cfg_pop(c, mark);
				goto out;
			}
			if ((fs->template_text = dup_or_fail(c, tpl, &rc)) == NULL)
				goto out;
			fs->template_len = strlen(tpl);
			/* An inline template is named by where it is in the file. */
			if (asprintf(&fs->origin, "%s: %s%stemplate", c->file, c->path,
				     c->path_len > 0 ? "." : "") < 0) {
				fs->origin = NULL;
				rc = lk_error_set(c->err, -ENOMEM, "%s: out of memory", c->file);
				goto out;
			}
		} else {
			FILE *f = fopen(tpl_file, "r");
			size_t n;

			fs->template_text = calloc(1, BROKER_TEMPLATE_MAX + 2);
			if (fs->template_text == NULL) {
				if (f != NULL)
					fclose(f);
				rc = lk_error_set(c->err, -ENOMEM, "%s: out of memory", c->file);
				goto out;
			}
			if (f == NULL) {
				size_t mark = lk_cfg_push_key(c, "template_file");

				rc = lk_cfg_fail(c, "cannot read %s: %s", tpl_file, strerror(errno));
				lk_cfg_pop(c, mark);
				goto out;
			}
			n = fread(fs->template_text, 1, BROKER_TEMPLATE_MAX + 1, f);
			fclose(f);
			if (n > BROKER_TEMPLATE_MAX) {
				size_t mark = lk_cfg_push_key(c, "template_file");

				rc = lk_cfg_fail(c, "%s is longer than %u bytes", tpl_file,
						 BROKER_TEMPLATE_MAX);
				lk_cfg_pop(c, mark);
				goto out;
			}
			fs->template_len = n;
			if ((fs->origin = dup_or_fail(c, tpl_file, &rc)) == NULL)
				goto out;
		}
	} else if (tpl != NULL || tpl_file != NULL) {
		rc = lk_cfg_fail(c, "template and template_file need format \"template\"");
		goto out;
	}
	if ((rc = lk_cfg_mode(c, obj, "mode", &fs->mode)) < 0)
		goto out;
	if (json_object_get(obj, "owner") != NULL) {
		if ((rc = lk_cfg_int(c, obj, "owner", false, 0, 0x7fffffff, &id)) < 0)
			goto out;
		fs->owner = (uid_t)id;
	}
	if (json_object_get(obj, "group") != NULL) {
		if ((rc = lk_cfg_int(c, obj, "group", false, 0, 0x7fffffff, &id)) < 0)
			goto out;
		fs->group = (gid_t)id;
	}
	s = NULL;
	if ((rc = lk_cfg_string(c, obj, "pidfile", false, &s)) < 0)
		goto out;
	if (s != NULL && (fs->pidfile = dup_or_fail(c, s, &rc)) == NULL)
		goto out;
	if ((rc = parse_signal(c, obj, "signal", false, &fs->signal)) < 0)
		goto out;
	s = NULL;
	if ((rc = lk_cfg_string(c, obj, "process", false, &s)) < 0)
		goto out;
	if ((s == NULL) != (fs->pidfile == NULL) ||
	    (s != NULL && (s[0] == '\0' || strlen(s) > 255 || strchr(s, '/') != NULL))) {
		size_t mark = lk_cfg_push_key(c, s != NULL ? "process" : "pidfile");

		rc = lk_cfg_fail(c, s == NULL ? "a pidfile needs \"process\": the command name of "
				 "the process to signal" : fs->pidfile == NULL ? "\"process\" "
				 "needs a pidfile" : "expected a command name (no '/', at most 255 "
				 "bytes)");
		lk_cfg_pop(c, mark);
		goto out;
	}
	if (s != NULL && (fs->process = dup_or_fail(c, s, &rc)) == NULL)
		goto out;
	if (json_object_get(obj, "process_uid") != NULL) {
		if ((rc = lk_cfg_int(c, obj, "process_uid", false, 0, 0x7fffffff, &id)) < 0)
			goto out;
		fs->process_uid = (uid_t)id;
	}
	*ret = fs;
	fs = NULL;
out:
	file_spec_free(fs);
	return rc;
}

/* Where a secret is read from the backend: path and kind. */
static int
parse_backend_source(struct lk_cfg *c, const json_t *obj, struct broker_secret_spec *sp)
{
	const char *s = NULL;
	int rc;

	if ((rc = lk_cfg_string(c, obj, "path", true, &s)) < 0)
		return rc;
	if (strlen(s) >= LK_VAULT_PATH_MAX || strstr(s, "//") != NULL || s[0] == '/' ||
	    strstr(s, "..") != NULL) {
		size_t mark = lk_cfg_push_key(c, "path");

		rc = lk_cfg_fail(c, "expected a Vault path such as \"database/creds/app\" "
				 "(no leading '/', no empty or '..' segments)");
		lk_cfg_pop(c, mark);
		return rc;
	}
	if ((sp->path = dup_or_fail(c, s, &rc)) == NULL)
		return rc;
	s = "auto";
	if ((rc = lk_cfg_string(c, obj, "kind", false, &s)) < 0)
		return rc;
	if (strcmp(s, "auto") == 0)
		sp->kind = BROKER_KIND_AUTO;
	else if (strcmp(s, "kv-v1") == 0)
		sp->kind = BROKER_KIND_KV1;
	else if (strcmp(s, "kv-v2") == 0)
		sp->kind = BROKER_KIND_KV2;
	else if (strcmp(s, "dynamic") == 0)
		sp->kind = BROKER_KIND_DYNAMIC;
	else {
		size_t mark = lk_cfg_push_key(c, "kind");

		rc = lk_cfg_fail(c, "expected \"auto\", \"kv-v1\", \"kv-v2\" or \"dynamic\"");
		lk_cfg_pop(c, mark);
		return rc;
	}
	return 0;
}

static int
parse_secret(struct lk_cfg *c, struct broker_config *cfg, const json_t *obj,
	     struct broker_secret_spec *sp)
{
	static const char *const keys[] = { "name", "path", "kind", "required", "refresh",
		"grace", "allow", "file", "from_file", "decrypt", "k8s_secret", "key",
		"decryption_key", NULL };
	static const char *const allow_keys[] = { "uids", "gids", NULL };
	const char *s = NULL;
	json_t *allow = NULL, *file = NULL;
	int rc;

	sp->refresh_ms = BROKER_REFRESH_DEFAULT_MS;
	sp->grace_ms = cfg->grace_ms;
	if ((rc = lk_cfg_keys(c, obj, keys)) < 0)
		return rc;
	if ((rc = lk_cfg_string(c, obj, "name", true, &s)) < 0)
		return rc;
	if (!broker_name_valid(s)) {
		size_t mark = lk_cfg_push_key(c, "name");

		rc = lk_cfg_fail(c, "expected at most %d letters, digits, '-', '_' or '.', "
				 "not starting with '.'", BROKER_NAME_MAX);
		lk_cfg_pop(c, mark);
		return rc;
	}
	for (size_t i = 0; i < cfg->nsecrets; i++) {
		if (strcmp(cfg->secrets[i].name, s) == 0) {
			size_t mark = lk_cfg_push_key(c, "name");

			rc = lk_cfg_fail(c, "duplicate secret name (also secrets[%zu])", i);
			lk_cfg_pop(c, mark);
			return rc;
		}
	}
	if ((sp->name = dup_or_fail(c, s, &rc)) == NULL)
		return rc;
	/* From the backend (path), or from a file or a mounted Secret volume (from_file,
	 * broker/source_file.c). */
	if ((rc = broker_source_file_parse(c, cfg, obj, sp)) < 0)
		return rc;
	if (sp->from_file == NULL && (rc = parse_backend_source(c, obj, sp)) < 0)
		return rc;
	if ((rc = lk_cfg_bool(c, obj, "required", &sp->required)) < 0)
		return rc;
	if ((rc = bounded_duration(c, obj, "refresh", &sp->refresh_ms)) < 0)
		return rc;
	if (sp->refresh_ms < BROKER_REFRESH_MIN_MS) {
		size_t mark = lk_cfg_push_key(c, "refresh");

		rc = lk_cfg_fail(c, "expected at least 1s");
		lk_cfg_pop(c, mark);
		return rc;
	}
	if ((rc = bounded_duration(c, obj, "grace", &sp->grace_ms)) < 0)
		return rc;
	if ((rc = lk_cfg_object(c, obj, "allow", false, &allow)) < 0)
		return rc;
	if (allow != NULL) {
		size_t mark = lk_cfg_push_key(c, "allow");

		sp->restricted = true;
		rc = lk_cfg_keys(c, allow, allow_keys);
		if (rc == 0)
			rc = parse_ids(c, allow, "uids", (uint32_t **)&sp->uids, &sp->nuids);
		if (rc == 0)
			rc = parse_ids(c, allow, "gids", (uint32_t **)&sp->gids, &sp->ngids);
		lk_cfg_pop(c, mark);
		if (rc < 0)
			return rc;
	}
	if ((rc = lk_cfg_object(c, obj, "file", false, &file)) < 0)
		return rc;
	if (file != NULL) {
		size_t mark = lk_cfg_push_key(c, "file");

		rc = parse_file(c, file, (size_t)(sp - cfg->secrets), &sp->file);
		lk_cfg_pop(c, mark);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int
parse_vault(struct lk_cfg *c, struct broker_config *cfg, const json_t *vobj)
{
	return lk_vault_config_from_json(&cfg->vault, c, vobj);
}

/* key: "auto" (auto_value in *ret) or an integer from min to max; left out, *ret is kept. */
static int
parse_auto_int(struct lk_cfg *c, const json_t *obj, const char *key, int min, int max,
	       unsigned auto_value, unsigned *ret)
{
	const json_t *v = json_object_get(obj, key);
	size_t mark;
	int rc;

	if (v == NULL)
		return 0;
	if (json_is_string(v) && strcmp(json_string_value(v), "auto") == 0) {
		*ret = auto_value;
		return 0;
	}
	if (json_is_integer(v) && json_integer_value(v) >= min && json_integer_value(v) <= max) {
		*ret = (unsigned)json_integer_value(v);
		return 0;
	}
	mark = lk_cfg_push_key(c, key);
	if (json_is_integer(v))
		rc = lk_cfg_fail(c, "expected \"auto\" or an integer from %d to %d, got %lld", min,
				 max, (long long)json_integer_value(v));
	else
		rc = lk_cfg_fail(c, "expected \"auto\" or an integer from %d to %d", min, max);
	lk_cfg_pop(c, mark);
	return rc;
}

static int
parse_listen(struct lk_cfg *c, struct broker_config *cfg, const json_t *obj)
{
	static const char *const keys[] = { "socket", "mode", "owner", "group", "metrics",
		"threads", "poll_us", "max_connections", "max_connections_per_uid",
		"header_timeout", "admin_uids", NULL };
	const char *s = NULL;
	int64_t v;
	int rc;

	if ((rc = lk_cfg_keys(c, obj, keys)) < 0)
		return rc;
	if ((rc = lk_cfg_string(c, obj, "socket", false, &s)) < 0)
		return rc;
	if (s != NULL) {
		if (s[0] != '/' || strlen(s) >= 108) {
			size_t mark = lk_cfg_push_key(c, "socket");

			rc = lk_cfg_fail(c, "expected an absolute path shorter than 108 bytes");
			lk_cfg_pop(c, mark);
			return rc;
		}
		free(cfg->socket_path);
		if ((cfg->socket_path = dup_or_fail(c, s, &rc)) == NULL)
			return rc;
	}
	if ((rc = lk_cfg_mode(c, obj, "mode", &cfg->socket_mode)) < 0)
		return rc;
	if (json_object_get(obj, "owner") != NULL) {
		if ((rc = lk_cfg_int(c, obj, "owner", false, 0, 0x7fffffff, &v)) < 0)
			return rc;
		cfg->socket_owner = (uid_t)v;
	}
	if (json_object_get(obj, "group") != NULL) {
		if ((rc = lk_cfg_int(c, obj, "group", false, 0, 0x7fffffff, &v)) < 0)
			return rc;
		cfg->socket_group = (gid_t)v;
	}
	s = NULL;
	if ((rc = lk_cfg_string(c, obj, "metrics", false, &s)) < 0)
		return rc;
	if (s != NULL && (cfg->metrics_addr = dup_or_fail(c, s, &rc)) == NULL)
		return rc;
	if ((rc = parse_auto_int(c, obj, "threads", 1, BROKER_THREADS_MAX, BROKER_THREADS_AUTO,
				 &cfg->threads)) < 0)
		return rc;
	if ((rc = parse_auto_int(c, obj, "poll_us", 0, LK_HTTPD_POLL_US_MAX, BROKER_POLL_US_AUTO,
				 &cfg->poll_us)) < 0)
		return rc;
	v = cfg->max_connections;
	if ((rc = lk_cfg_int(c, obj, "max_connections", false, 32, 65536, &v)) < 0)
		return rc;
	cfg->max_connections = (unsigned)v;
	v = cfg->max_connections_per_uid;
	if ((rc = lk_cfg_int(c, obj, "max_connections_per_uid", false, 1, 65536, &v)) < 0)
		return rc;
	cfg->max_connections_per_uid = (unsigned)v;
	if ((rc = bounded_duration(c, obj, "header_timeout", &cfg->header_timeout_ms)) < 0)
		return rc;
	if (cfg->header_timeout_ms < 100 || cfg->header_timeout_ms > 3600 * 1000LL) {
		size_t mark = lk_cfg_push_key(c, "header_timeout");

		rc = lk_cfg_fail(c, "expected a duration between 100ms and 1h");
		lk_cfg_pop(c, mark);
		return rc;
	}
	return parse_ids(c, obj, "admin_uids", (uint32_t **)&cfg->admin_uids, &cfg->nadmin_uids);
}

/* One template compiled against the configured names: the secrets it reads are known from
 * here on, and a name that is not configured is refused now rather than at the first
 * render. */
static int
compile_one(struct broker_config *cfg, struct broker_file_spec *fs, const char *const *names,
	    struct lk_error *err)
{
	struct lk_error terr;
	int rc;

	if (fs == NULL || fs->format != BROKER_FORMAT_TEMPLATE)
		return 0;
	lk_error_clear(&terr);
	rc = broker_template_compile(fs->template_text, fs->template_len, fs->origin, names,
				     cfg->nsecrets, fs->secret, &fs->template, &terr);
	if (rc < 0) {
		/* An inline template's origin names the file already. */
		if (fs->origin != NULL && fs->origin[0] == '/')
			return lk_error_set(err, rc, "%s: template_file %s", cfg->file, terr.msg);
		return lk_error_set(err, rc, "%s", terr.msg);
	}
	return 0;
}

static int
compile_templates(struct broker_config *cfg, struct lk_error *err)
{
	const char **names = calloc(cfg->nsecrets + 1, sizeof(*names));
	int rc = 0;

	if (names == NULL)
		return lk_error_set(err, -ENOMEM, "%s: out of memory", cfg->file);
	for (size_t i = 0; i < cfg->nsecrets; i++)
		names[i] = cfg->secrets[i].name;
	for (size_t i = 0; rc == 0 && i < cfg->nsecrets; i++)
		rc = compile_one(cfg, cfg->secrets[i].file, names, err);
	for (size_t i = 0; rc == 0 && i < cfg->ntemplates; i++)
		rc = compile_one(cfg, cfg->templates[i], names, err);
	free(names);
	return rc;
}

/* A POSIX variable name: a letter or '_', then letters, digits and '_'. */
static bool
exec_env_name_valid(const char *k)
{
	if (strlen(k) > BROKER_EXEC_ENV_NAME_MAX ||
	    !((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || *k == '_'))
		return false;
	for (k++; *k != '\0'; k++)
		if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') ||
		      (*k >= '0' && *k <= '9') || *k == '_'))
			return false;
	return true;
}

/* Copies the strings of argv into a new NULL-terminated array (owned: exec_command_free). */
static char **
exec_command_dup(const char *const *argv, size_t argc)
{
	char **cmd = calloc(argc + 1, sizeof(*cmd));

	if (cmd == NULL)
		return NULL;
	for (size_t i = 0; i < argc; i++) {
		if ((cmd[i] = strdup(argv[i])) == NULL) {
			for (size_t j = 0; j < i; j++)
				free(cmd[j]);
			free(cmd);
			return NULL;
		}
	}
	return cmd;
}

static void
exec_command_free(char **cmd)
{
	for (size_t i = 0; cmd != NULL && cmd[i] != NULL; i++)
		free(cmd[i]);
	free(cmd);
}

static void
exec_spec_free(struct broker_exec_spec *x)
{
	if (x == NULL)
		return;
	exec_command_free(x->command);
	for (size_t i = 0; i < x->nenv; i++) {
		free(x->env[i].name);
		free(x->env[i].key);
	}
	free(x->env);
	free(x);
}

static struct broker_exec_spec *
exec_spec_new(void)
{
	struct broker_exec_spec *x = calloc(1, sizeof(*x));

	if (x != NULL) {
		x->restart = BROKER_RESTART_ALWAYS;
		x->kill_timeout_ms = BROKER_EXEC_KILL_TIMEOUT_DEFAULT_MS;
	}
	return x;
}

/* "secret.key": secret names may hold dots too, so the reference is split after the one
 * configured secret name it begins with (and a '.'); two such names are ambiguous. */
static int
exec_env_ref(struct lk_cfg *c, const struct broker_config *cfg, const char *ref,
	     struct broker_exec_env *ret)
{
	size_t found = SIZE_MAX, matches = 0, len = 0;

	for (size_t i = 0; i < cfg->nsecrets; i++) {
		size_t n = strlen(cfg->secrets[i].name);

		if (strncmp(ref, cfg->secrets[i].name, n) == 0 && ref[n] == '.' &&
		    ref[n + 1] != '\0') {
			found = i;
			len = n;
			matches++;
		}
	}
	if (matches == 0)
		return lk_cfg_fail(c, "expected \"SECRET.KEY\" naming one of the secrets "
				   "configured and one of its keys");
	if (matches > 1)
		return lk_cfg_fail(c, "ambiguous: more than one configured secret name is a "
				   "prefix of it (rename one of them)");
	ret->secret = found;
	if ((ret->key = strdup(ref + len + 1)) == NULL)
		return lk_error_set(c->err, -ENOMEM, "%s: out of memory", c->file);
	return 0;
}

static int
parse_exec(struct lk_cfg *c, struct broker_config *cfg, const json_t *obj)
{
	static const char *const keys[] = { "command", "env", "restart_on_change",
		"restart_signal", "kill_timeout", NULL };
	struct broker_exec_spec *x;
	json_t *cmd = NULL, *env = NULL, *v;
	const char *s = NULL, *name;
	size_t mark, i;
	int rc;

	if ((x = exec_spec_new()) == NULL)
		return lk_error_set(c->err, -ENOMEM, "%s: out of memory", c->file);
	if ((rc = lk_cfg_keys(c, obj, keys)) < 0)
		goto out;
	if ((rc = lk_cfg_array(c, obj, "command", false, &cmd)) < 0)
		goto out;
	if (cmd != NULL) {
		const char *argv[BROKER_EXEC_ARGS_MAX];

		mark = lk_cfg_push_key(c, "command");
		if (json_array_size(cmd) == 0 || json_array_size(cmd) > BROKER_EXEC_ARGS_MAX)
			rc = lk_cfg_fail(c, "expected between 1 and %d strings (the program, then "
					 "its arguments)", BROKER_EXEC_ARGS_MAX);
		json_array_foreach(cmd, i, v) {
			if (rc < 0)
				break;
			if (!lk_json_is_cstring(v) || (i == 0 && json_string_length(v) == 0)) {
				size_t m2 = lk_cfg_push_index(c, i);

				rc = lk_cfg_fail(c, i == 0 ? "expected the program: a non-empty "
						 "string without NUL bytes" : "expected a string "
						 "without NUL bytes");
				lk_cfg_pop(c, m2);
				break;
			}
			argv[i] = json_string_value(v);
		}
		lk_cfg_pop(c, mark);
		if (rc < 0)
			goto out;
		x->ncommand = json_array_size(cmd);
		if ((x->command = exec_command_dup(argv, x->ncommand)) == NULL) {
			rc = lk_error_set(c->err, -ENOMEM, "%s: out of memory", c->file);
			goto out;
		}
	}
	if ((rc = lk_cfg_object(c, obj, "env", false, &env)) < 0)
		goto out;
	if (env != NULL) {
		mark = lk_cfg_push_key(c, "env");
		if (json_object_size(env) > BROKER_EXEC_ENV_MAX)
			rc = lk_cfg_fail(c, "more than %d variables", BROKER_EXEC_ENV_MAX);
		else if ((x->env = calloc(json_object_size(env) + 1, sizeof(*x->env))) == NULL)
			rc = lk_error_set(c->err, -ENOMEM, "%s: out of memory", c->file);
		json_object_foreach(env, name, v) {
			size_t m2;

			if (rc < 0)
				break;
			m2 = lk_cfg_push_key(c, name);
			if (!exec_env_name_valid(name))
				rc = lk_cfg_fail(c, "expected a variable name: a letter or '_', then "
						 "letters, digits and '_', at most %d bytes",
						 BROKER_EXEC_ENV_NAME_MAX);
			else if (!json_is_string(v))
				rc = lk_cfg_fail(c, "expected a string \"SECRET.KEY\"");
			else if ((rc = exec_env_ref(c, cfg, json_string_value(v),
						    &x->env[x->nenv])) == 0 &&
				 (x->env[x->nenv].name = strdup(name)) == NULL)
				rc = lk_error_set(c->err, -ENOMEM, "%s: out of memory", c->file);
			if (x->env[x->nenv].key != NULL)
				x->nenv++;
			lk_cfg_pop(c, m2);
		}
		lk_cfg_pop(c, mark);
		if (rc < 0)
			goto out;
	}
	if ((rc = lk_cfg_string(c, obj, "restart_on_change", false, &s)) < 0)
		goto out;
	if (s != NULL && strcmp(s, "always") != 0 && strcmp(s, "never") != 0) {
		mark = lk_cfg_push_key(c, "restart_on_change");
		rc = lk_cfg_fail(c, "expected \"always\" or \"never\"");
		lk_cfg_pop(c, mark);
		goto out;
	}
	if (s != NULL && strcmp(s, "never") == 0)
		x->restart = BROKER_RESTART_NEVER;
	if ((rc = parse_signal(c, obj, "restart_signal", true, &x->restart_signal)) < 0)
		goto out;
	if (x->restart_signal != 0 && x->restart == BROKER_RESTART_NEVER) {
		mark = lk_cfg_push_key(c, "restart_signal");
		rc = lk_cfg_fail(c, "a signal on change contradicts restart_on_change \"never\" "
				 "(drop one of them)");
		lk_cfg_pop(c, mark);
		goto out;
	}
	if ((rc = bounded_duration(c, obj, "kill_timeout", &x->kill_timeout_ms)) < 0)
		goto out;
	if (x->kill_timeout_ms < 100 || x->kill_timeout_ms > 3600 * 1000LL) {
		mark = lk_cfg_push_key(c, "kill_timeout");
		rc = lk_cfg_fail(c, "expected a duration between 100ms and 1h");
		lk_cfg_pop(c, mark);
		goto out;
	}
	cfg->exec = x;
	x = NULL;
out:
	exec_spec_free(x);
	return rc;
}

int
broker_config_set_command(struct broker_config *cfg, char *const argv[], size_t argc,
			  struct lk_error *err)
{
	char **cmd;

	if (argc == 0 || argc > BROKER_EXEC_ARGS_MAX)
		return lk_error_set(err, -E2BIG, "the command after \"--\": expected between 1 and "
				    "%d words", BROKER_EXEC_ARGS_MAX);
	if (argv[0][0] == '\0')
		return lk_error_set(err, -EINVAL, "the command after \"--\": the program is empty");
	if (cfg->exec == NULL && (cfg->exec = exec_spec_new()) == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	if ((cmd = exec_command_dup((const char *const *)argv, argc)) == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	exec_command_free(cfg->exec->command);
	cfg->exec->command = cmd;
	cfg->exec->ncommand = argc;
	return 0;
}

int
broker_config_check_exec(const struct broker_config *cfg, struct lk_error *err)
{
	if (cfg->exec != NULL && cfg->exec->ncommand == 0)
		return lk_error_set(err, -EINVAL, "%s: exec.command: missing (give it in the file, "
				    "or after \"--\" on the command line)", cfg->file);
	return 0;
}

int
broker_config_parse(struct broker_config *cfg, const char *file, const json_t *root,
		    struct lk_error *err)
{
	static const char *const keys[] = { "vault", "listen", "secrets", "grace",
		"revoke_on_shutdown", "retry", "log_level", "metrics_series_max", "token_check",
		"require_mlock", "audit_interval", "state_dir", "seccomp", "decryption_key",
		"templates", "exec", NULL };
	static const char *const retry_keys[] = { "initial", "max", NULL };
	struct lk_cfg c;
	json_t *vault = NULL, *listen = NULL, *secrets = NULL, *retry = NULL, *templates = NULL,
	       *exec = NULL;
	const char *s = NULL;
	size_t mark, i;
	json_t *v;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	lk_vault_config_init(&cfg->vault);
	cfg->socket_mode = 0660;
	cfg->socket_owner = (uid_t)-1;
	cfg->socket_group = (gid_t)-1;
	cfg->threads = BROKER_THREADS_AUTO;
	cfg->poll_us = BROKER_POLL_US_AUTO;
	cfg->max_connections = BROKER_CONNECTIONS_DEFAULT;
	cfg->max_connections_per_uid = BROKER_CONNECTIONS_PER_UID_DEFAULT;
	cfg->header_timeout_ms = BROKER_HEADER_TIMEOUT_DEFAULT_MS;
	cfg->grace_ms = BROKER_GRACE_DEFAULT_MS;
	cfg->token_check_ms = BROKER_TOKEN_CHECK_DEFAULT_MS;
	cfg->audit_interval_ms = BROKER_AUDIT_INTERVAL_DEFAULT_MS;
	cfg->revoke_on_shutdown = true;
	cfg->retry_base_ms = BROKER_RETRY_BASE_DEFAULT_MS;
	cfg->retry_cap_ms = BROKER_RETRY_CAP_DEFAULT_MS;
	lk_cfg_init(&c, file, err);
	if ((cfg->file = strdup(file)) == NULL) {
		rc = lk_error_set(err, -ENOMEM, "%s: out of memory", file);
		goto out;
	}
	if ((rc = lk_cfg_keys(&c, root, keys)) < 0)
		goto out;
	/* Required unless nothing is read from the backend (checked after the secrets). */
	if ((rc = lk_cfg_object(&c, root, "vault", false, &vault)) < 0)
		goto out;
	mark = lk_cfg_push_key(&c, "vault");
	rc = vault != NULL ? parse_vault(&c, cfg, vault) : 0;
	lk_cfg_pop(&c, mark);
	if (rc < 0)
		goto out;
	if ((cfg->socket_path = strdup(BROKER_SOCKET_DEFAULT)) == NULL) {
		rc = lk_error_set(err, -ENOMEM, "%s: out of memory", file);
		goto out;
	}
	if ((rc = lk_cfg_object(&c, root, "listen", false, &listen)) < 0)
		goto out;
	if (listen != NULL) {
		mark = lk_cfg_push_key(&c, "listen");
		rc = parse_listen(&c, cfg, listen);
		lk_cfg_pop(&c, mark);
		if (rc < 0)
			goto out;
	}
	if ((rc = bounded_duration(&c, root, "token_check", &cfg->token_check_ms)) < 0)
		goto out;
	if (cfg->token_check_ms != 0 && cfg->token_check_ms < BROKER_TOKEN_CHECK_MIN_MS) {
		mark = lk_cfg_push_key(&c, "token_check");
		rc = lk_cfg_fail(&c, "expected 0 (off) or at least 1s");
		lk_cfg_pop(&c, mark);
		goto out;
	}
	if ((rc = lk_cfg_bool(&c, root, "require_mlock", &cfg->require_mlock)) < 0)
		goto out;
	cfg->seccomp_set = json_object_get(root, "seccomp") != NULL;
	if ((rc = lk_cfg_bool(&c, root, "seccomp", &cfg->seccomp)) < 0)
		goto out;
	s = NULL;
	if ((rc = lk_cfg_string(&c, root, "state_dir", false, &s)) < 0)
		goto out;
	if (s != NULL) {
		if (s[0] != '/' || strlen(s) > BROKER_FILE_PATH_MAX) {
			mark = lk_cfg_push_key(&c, "state_dir");
			rc = lk_cfg_fail(&c, "expected an absolute path of at most %d bytes",
					 BROKER_FILE_PATH_MAX);
			lk_cfg_pop(&c, mark);
			goto out;
		}
		if ((cfg->state_dir = strdup(s)) == NULL) {
			rc = lk_error_set(err, -ENOMEM, "%s: out of memory", file);
			goto out;
		}
		s = NULL;
	}
	if ((rc = bounded_duration(&c, root, "audit_interval", &cfg->audit_interval_ms)) < 0)
		goto out;
	if (cfg->audit_interval_ms < 1000 || cfg->audit_interval_ms > 3600 * 1000LL) {
		mark = lk_cfg_push_key(&c, "audit_interval");
		rc = lk_cfg_fail(&c, "expected a duration between 1s and 1h");
		lk_cfg_pop(&c, mark);
		goto out;
	}
	if ((rc = bounded_duration(&c, root, "grace", &cfg->grace_ms)) < 0 ||
	    (rc = lk_cfg_bool(&c, root, "revoke_on_shutdown", &cfg->revoke_on_shutdown)) < 0)
		goto out;
	{
		int64_t n = LK_METRICS_SERIES_MAX_DEFAULT;

		if ((rc = lk_cfg_int(&c, root, "metrics_series_max", false, 1,
				     BROKER_METRICS_SERIES_MAX_LIMIT, &n)) < 0)
			goto out;
		cfg->metrics_series_max = (size_t)n;
	}
	if ((rc = lk_cfg_string(&c, root, "log_level", false, &s)) < 0)
		goto out;
	if (s != NULL) {
		enum lk_log_level lvl;

		if (lk_log_level_parse(s, &lvl) < 0) {
			mark = lk_cfg_push_key(&c, "log_level");
			rc = lk_cfg_fail(&c, "expected \"debug\", \"info\", \"warn\" or \"error\"");
			lk_cfg_pop(&c, mark);
			goto out;
		}
		if ((cfg->log_level = strdup(s)) == NULL) {
			rc = lk_error_set(err, -ENOMEM, "%s: out of memory", file);
			goto out;
		}
	}
	if ((rc = lk_cfg_object(&c, root, "retry", false, &retry)) < 0)
		goto out;
	if (retry != NULL) {
		mark = lk_cfg_push_key(&c, "retry");
		rc = lk_cfg_keys(&c, retry, retry_keys);
		if (rc == 0)
			rc = bounded_duration(&c, retry, "initial", &cfg->retry_base_ms);
		if (rc == 0)
			rc = bounded_duration(&c, retry, "max", &cfg->retry_cap_ms);
		if (rc == 0 && (cfg->retry_base_ms <= 0 || cfg->retry_cap_ms < cfg->retry_base_ms))
			rc = lk_cfg_fail(&c, "expected 0 < initial <= max");
		lk_cfg_pop(&c, mark);
		if (rc < 0)
			goto out;
	}
	/* Before the secrets: those that decrypt need a key, theirs or this one. */
	if ((rc = broker_key_spec_parse(&c, root, "decryption_key", &cfg->decryption_key)) < 0)
		goto out;
	if ((rc = lk_cfg_array(&c, root, "secrets", true, &secrets)) < 0)
		goto out;
	if (json_array_size(secrets) == 0 || json_array_size(secrets) > BROKER_SECRETS_MAX) {
		mark = lk_cfg_push_key(&c, "secrets");
		rc = lk_cfg_fail(&c, "expected between 1 and %d secrets", BROKER_SECRETS_MAX);
		lk_cfg_pop(&c, mark);
		goto out;
	}
	cfg->secrets = calloc(json_array_size(secrets), sizeof(*cfg->secrets));
	if (cfg->secrets == NULL) {
		rc = lk_error_set(err, -ENOMEM, "%s: out of memory", file);
		goto out;
	}
	mark = lk_cfg_push_key(&c, "secrets");
	json_array_foreach(secrets, i, v) {
		size_t m2 = lk_cfg_push_index(&c, i);

		rc = parse_secret(&c, cfg, v, &cfg->secrets[i]);
		cfg->nsecrets = i + 1;
		lk_cfg_pop(&c, m2);
		if (rc < 0)
			break;
	}
	lk_cfg_pop(&c, mark);
	if (rc == 0)
		rc = broker_source_file_check_all(&c, cfg);
	if (rc == 0 && vault == NULL && cfg->backend) {
		mark = lk_cfg_push_key(&c, "vault");
		rc = lk_cfg_fail(&c, "missing required key (a secret with a path, or a "
				 "decryption_key with vault_path, is read from the backend)");
		lk_cfg_pop(&c, mark);
	}
	if (rc < 0)
		goto out;
	if ((rc = lk_cfg_array(&c, root, "templates", false, &templates)) < 0)
		goto out;
	if (templates != NULL) {
		mark = lk_cfg_push_key(&c, "templates");
		if (json_array_size(templates) > BROKER_TEMPLATES_MAX) {
			rc = lk_cfg_fail(&c, "more than %d templates", BROKER_TEMPLATES_MAX);
		} else if ((cfg->templates = calloc(json_array_size(templates) + 1,
						    sizeof(*cfg->templates))) == NULL) {
			rc = lk_error_set(err, -ENOMEM, "%s: out of memory", file);
		} else {
			json_array_foreach(templates, i, v) {
				size_t m2 = lk_cfg_push_index(&c, i);

				if (!json_is_object(v))
					rc = lk_cfg_fail(&c, "expected an object");
				else
					rc = parse_file(&c, v, SIZE_MAX, &cfg->templates[i]);
				lk_cfg_pop(&c, m2);
				if (rc < 0)
					break;
				cfg->ntemplates = i + 1;
			}
		}
		lk_cfg_pop(&c, mark);
		if (rc < 0)
			goto out;
	}
	/* After the secrets: exec.env names them. */
	if ((rc = lk_cfg_object(&c, root, "exec", false, &exec)) < 0)
		goto out;
	if (exec != NULL) {
		mark = lk_cfg_push_key(&c, "exec");
		rc = parse_exec(&c, cfg, exec);
		lk_cfg_pop(&c, mark);
	}
	if (rc == 0)
		rc = compile_templates(cfg, err);
out:
	if (rc < 0)
		broker_config_clear(cfg);
	return rc;
}

int
broker_config_load(struct broker_config *cfg, const char *file, struct lk_error *err)
{
	struct lk_vault_error verr;
	json_t *root;
	int rc;

	root = lk_cfg_load_file(file, err);
	if (root == NULL)
		return err != NULL && err->code < 0 ? err->code : -EINVAL;
	rc = broker_config_parse(cfg, file, root, err);
	json_decref(root);
	if (rc == 0 && (rc = broker_source_file_resolve(cfg, err)) < 0)
		broker_config_clear(cfg);
	if (rc < 0)
		return rc;
	/* The container image turns the allow-list on; the file has the last word. */
	if (!cfg->seccomp_set) {
		const char *env = getenv("LATCHKEY_SECCOMP");

		cfg->seccomp = env != NULL && strcmp(env, "1") == 0;
	}
	lk_vault_error_clear(&verr);
	rc = lk_vault_config_from_env(&cfg->vault, &verr);
	if (rc < 0) {
		lk_error_set(err, rc, "%s: vault settings from the environment: %s", file,
			     verr.base.msg);
		broker_config_clear(cfg);
	}
	return rc;
}

void
broker_config_clear(struct broker_config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < cfg->nsecrets; i++) {
		struct broker_secret_spec *sp = &cfg->secrets[i];

		free(sp->name);
		free(sp->path);
		free(sp->uids);
		free(sp->gids);
		file_spec_free(sp->file);
		broker_source_file_free(sp->from_file);
	}
	free(cfg->secrets);
	broker_key_spec_free(cfg->decryption_key);
	for (size_t i = 0; i < cfg->ntemplates; i++)
		file_spec_free(cfg->templates[i]);
	free(cfg->templates);
	free(cfg->file);
	free(cfg->socket_path);
	free(cfg->metrics_addr);
	free(cfg->admin_uids);
	free(cfg->log_level);
	free(cfg->state_dir);
	exec_spec_free(cfg->exec);
	lk_vault_config_clear(&cfg->vault);
	memset(cfg, 0, sizeof(*cfg));
}
