/* source_file.c — secrets read from files: a mounted Kubernetes Secret volume, any
 * directory, or one file, served like the backend's secrets (the same snapshots), and
 * with "decrypt" opened first: the sync controller's encryption at source writes every
 * value as lk1 text bound to "namespace/name/key".
 *
 * The kubelet writes a Secret volume with its atomic writer: the files live in a
 * timestamped directory (..2026_12_01_10_00_00.123456789), "..data" links to it, and each
 * key is a link KEY -> ..data/KEY. An update writes a new timestamped directory, renames a
 * new link "..data_tmp" over "..data" (the one atomic step), then adds or removes the key
 * links and removes the old directory. A read therefore opens "..data" once and reads
 * every file through that descriptor: a swap in the middle cannot mix two versions, and
 * a file removed under it (the old directory going away) makes the read start again.
 *
 * One thread (files_main) owns the reading of every file source: it reads each at start,
 * again when inotify reports a change in its directory (the ..data rename among them),
 * every `refresh` as a safety net, and after a failure with the entry's backoff. The
 * scheduler never touches these entries; the serving threads see them as any other.
 * Everything it does with the watches is under the generation lock held for reading, so
 * that a reload (broker_files_remap, the lock held for writing) can replace them: a source
 * kept keeps its watch, a new one is read at the thread's next round, and the watch of
 * one removed goes.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <limits.h>
#include <poll.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/internal.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/file.h"
#include "common/log.h"
#include "crypto/crypto.h"
#include "manifest/manifest.h"

/* What a watched directory reports: files written, created, removed and renamed in it
 * (the kubelet's ..data swap is a rename), and the directory itself going away. */
#define WATCH_MASK (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | \
		    IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
/* The longest the thread sleeps without looking at its timers again. */
#define FILES_IDLE_MAX_MS (60 * 1000LL)
/* Room for a reason that names a long path; what the status keeps is cut to
 * BROKER_REASON_MAX, the log line has all of it. */
#define FILES_REASON_MAX (BROKER_FILE_PATH_MAX + 512)

/* ---- configuration ---- */

void
broker_source_file_free(struct broker_source_file *fs)
{
	if (fs == NULL)
		return;
	free(fs->path);
	free(fs->key);
	free(fs->k8s_namespace);
	free(fs->k8s_name);
	broker_key_spec_free(fs->decryption_key);
	free(fs);
}

static int
fail_at(struct lk_cfg *c, const char *key, const char *msg)
{
	size_t mark = lk_cfg_push_key(c, key);
	int rc = lk_cfg_fail(c, "%s", msg);

	lk_cfg_pop(c, mark);
	return rc;
}

static int
parse_k8s_secret(struct lk_cfg *c, const json_t *obj, struct broker_secret_spec *sp,
		 struct broker_source_file *fs)
{
	static const char *const keys[] = { "namespace", "name", NULL };
	const char *ns = NULL, *name = NULL;
	json_t *o = NULL;
	size_t mark;
	int rc;

	if ((rc = lk_cfg_object(c, obj, "k8s_secret", false, &o)) < 0)
		return rc;
	if (o != NULL) {
		mark = lk_cfg_push_key(c, "k8s_secret");
		if ((rc = lk_cfg_keys(c, o, keys)) == 0 &&
		    (rc = lk_cfg_string(c, o, "namespace", false, &ns)) == 0 &&
		    (rc = lk_cfg_string(c, o, "name", false, &name)) == 0) {
			if (ns != NULL && !lk_manifest_label_valid(ns))
				rc = fail_at(c, "namespace", "expected a namespace name (lowercase "
					     "letters, digits and '-', at most 63 bytes)");
			else if (name != NULL && !lk_manifest_subdomain_valid(name))
				rc = fail_at(c, "name", "expected a Secret name (lowercase letters, "
					     "digits, '-' and '.', at most 253 bytes)");
		}
		lk_cfg_pop(c, mark);
		if (rc < 0)
			return rc;
		if (!fs->decrypt)
			return fail_at(c, "k8s_secret", "names the Secret the values are sealed for: "
				       "it needs \"decrypt\": true");
	}
	if (!fs->decrypt)
		return 0;
	if (name == NULL && !lk_manifest_subdomain_valid(sp->name))
		return fail_at(c, "name", "not a Kubernetes Secret name (lowercase letters, digits, "
			       "'-' and '.'), so it cannot be the Secret the values are bound to: "
			       "give k8s_secret.name");
	if ((fs->k8s_name = strdup(name != NULL ? name : sp->name)) == NULL ||
	    (ns != NULL && (fs->k8s_namespace = strdup(ns)) == NULL))
		return lk_error_set(c->err, -ENOMEM, "%s: out of memory", c->file);
	return 0;
}

int
broker_source_file_parse(struct lk_cfg *c, const struct broker_config *cfg, const json_t *obj,
			 struct broker_secret_spec *sp)
{
	static const char *const only_file[] = { "decrypt", "k8s_secret", "key",
		"decryption_key", NULL };
	static const char *const only_backend[] = { "kind", "grace", NULL };
	struct broker_source_file *fs = NULL;
	const char *s = NULL;
	size_t len;
	int rc;

	if (json_object_get(obj, "from_file") == NULL) {
		for (size_t i = 0; only_file[i] != NULL; i++)
			if (json_object_get(obj, only_file[i]) != NULL)
				return fail_at(c, only_file[i], "is for a secret read from a file "
					       "(from_file)");
		/* "file" is where a secret is written; the source is from_file. */
		if (json_is_string(json_object_get(obj, "file")))
			return fail_at(c, "file", "expected an object: the file the secret is "
				       "written to; a secret read from a file or a mounted Secret "
				       "volume is \"from_file\": PATH");
		return 0;
	}
	if (json_object_get(obj, "path") != NULL)
		return fail_at(c, "path", "give either path (read from the backend) or from_file "
			       "(read from a file), not both");
	for (size_t i = 0; only_backend[i] != NULL; i++)
		if (json_object_get(obj, only_backend[i]) != NULL)
			return fail_at(c, only_backend[i], "is for a secret read from the backend "
				       "(path), not from a file");
	fs = calloc(1, sizeof(*fs));
	if (fs == NULL)
		return lk_error_set(c->err, -ENOMEM, "%s: out of memory", c->file);
	if ((rc = lk_cfg_string(c, obj, "from_file", true, &s)) < 0)
		goto out;
	len = strlen(s);
	/* "/dir/" names "/dir": the trailing '/' would make an empty base name. */
	while (len > 1 && s[len - 1] == '/')
		len--;
	if (s[0] != '/' || len > BROKER_FILE_PATH_MAX) {
		rc = fail_at(c, "from_file", "expected an absolute path of at most 1024 bytes: a "
			     "directory (a mounted Secret volume) or a file");
		goto out;
	}
	if ((fs->path = strndup(s, len)) == NULL) {
		rc = lk_error_set(c->err, -ENOMEM, "%s: out of memory", c->file);
		goto out;
	}
	if ((rc = lk_cfg_bool(c, obj, "decrypt", &fs->decrypt)) < 0)
		goto out;
	s = NULL;
	if ((rc = lk_cfg_string(c, obj, "key", false, &s)) < 0)
		goto out;
	if (s != NULL) {
		if (!lk_manifest_secret_key_valid(s, strlen(s))) {
			rc = fail_at(c, "key", "expected a Secret key (letters, digits, '-', '_' and "
				     "'.', at most 253 bytes)");
			goto out;
		}
		if ((fs->key = strdup(s)) == NULL) {
			rc = lk_error_set(c->err, -ENOMEM, "%s: out of memory", c->file);
			goto out;
		}
	}
	if ((rc = parse_k8s_secret(c, obj, sp, fs)) < 0)
		goto out;
	if ((rc = broker_key_spec_parse(c, obj, "decryption_key", &fs->decryption_key)) < 0)
		goto out;
	if (fs->decryption_key != NULL && !fs->decrypt) {
		rc = fail_at(c, "decryption_key", "is for \"decrypt\": true");
		goto out;
	}
	if (fs->decrypt && fs->decryption_key == NULL && cfg->decryption_key == NULL) {
		rc = fail_at(c, "decrypt", "needs a decryption_key: at the top level, or in the "
			     "secret");
		goto out;
	}
	sp->from_file = fs;
	fs = NULL;
out:
	broker_source_file_free(fs);
	return rc;
}

int
broker_source_file_resolve(struct broker_config *cfg, struct lk_error *err)
{
	const char *ns = getenv("POD_NAMESPACE");

	for (size_t i = 0; i < cfg->nsecrets; i++) {
		struct broker_source_file *fs = cfg->secrets[i].from_file;

		if (fs == NULL || !fs->decrypt || fs->k8s_namespace != NULL)
			continue;
		if (ns == NULL || ns[0] == '\0')
			return lk_error_set(err, -EINVAL, "%s: secrets[%zu].k8s_secret.namespace: not "
					    "given, and $POD_NAMESPACE is not set (set it from the "
					    "downward API, fieldRef metadata.namespace, or name the "
					    "namespace here)", cfg->file, i);
		if (!lk_manifest_label_valid(ns))
			return lk_error_set(err, -EINVAL, "%s: secrets[%zu].k8s_secret.namespace: "
					    "$POD_NAMESPACE is not a namespace name", cfg->file, i);
		if ((fs->k8s_namespace = strdup(ns)) == NULL)
			return lk_error_set(err, -ENOMEM, "%s: out of memory", cfg->file);
	}
	return 0;
}

/* ---- reading ---- */

struct reader {
	const struct broker_source_file *fs;
	const struct lk_keyset *ks;
	json_t *data;
	char *reason;
	size_t reasonlen;
};

static int
refuse(struct reader *r, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
refuse(struct reader *r, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->reason, r->reasonlen, fmt, ap);
	va_end(ap);
	return rc;
}

/* Reads the open file fd as the value of key (shown: its path, for messages). */
static int
read_value(struct reader *r, const char *key, const char *shown, int fd)
{
	const struct broker_source_file *fs = r->fs;
	struct lk_secret *pt = NULL;
	struct lk_error err;
	struct lk_buf buf;
	json_t *v = NULL;
	char label[LK_LABEL_MAX + 1];
	size_t len;
	int rc;

	lk_error_clear(&err);
	/* Ciphertext is a little longer than the value it seals; either is capped. */
	lk_buf_init(&buf, fs->decrypt ? LK_SEALED_TEXT_MAX : LK_SECRET_MAX, true);
	rc = lk_fd_read_all(fd, &buf);
	if (rc == -E2BIG) {
		rc = refuse(r, rc, "key %s (%s): larger than %zu bytes, the most served", key, shown,
			    buf.max);
		goto out;
	}
	if (rc < 0) {
		rc = refuse(r, rc, "key %s (%s): cannot read: %s", key, shown, strerror(-rc));
		goto out;
	}
	if (!fs->decrypt) {
		v = json_stringn(buf.data, buf.len);
	} else {
		/* A hand-made file may end with a newline; lk1 text never does. */
		len = buf.len;
		if (len > 0 && buf.data[len - 1] == '\n')
			len--;
		if (len > 0 && buf.data[len - 1] == '\r')
			len--;
		if (len < strlen(LK_LK1_TEXT_PREFIX) ||
		    memcmp(buf.data, LK_LK1_TEXT_PREFIX, strlen(LK_LK1_TEXT_PREFIX)) != 0) {
			rc = refuse(r, -EBADMSG, "key %s (%s): not lk1 text: with decrypt, every value "
				    "must be sealed with lk1 (encryption at source)", key, shown);
			goto out;
		}
		rc = lk_scope_label(LK_SCOPE_STRICT, fs->k8s_namespace, fs->k8s_name, key, label,
				    sizeof(label), &err);
		if (rc < 0) {
			rc = refuse(r, rc, "key %s (%s): %s", key, shown, err.msg);
			goto out;
		}
		rc = lk_keyset_open(r->ks, label, buf.data, len, &pt, &err);
		if (rc < 0) {
			rc = refuse(r, rc == -ENOMEM ? rc : -EBADMSG, "key %s (%s): does not open: %s",
				    key, shown, err.msg);
			goto out;
		}
		v = json_stringn(lk_secret_cstr(pt), lk_secret_len(pt));
	}
	if (v == NULL) {
		rc = refuse(r, -EILSEQ, "key %s (%s): the value is not UTF-8 text; only text "
			    "values are served", key, shown);
		goto out;
	}
	if (json_object_set_new(r->data, key, v) < 0) {
		v = NULL;
		rc = refuse(r, -EILSEQ, "%s: the file name is not UTF-8, so it cannot be a key",
			    shown);
		goto out;
	}
	v = NULL;
	rc = 0;
out:
	json_decref(v);
	lk_secret_free(pt);
	lk_buf_free(&buf);
	return rc;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool
utf8_valid(const char *s)
{
	json_t *t = json_string(s);
	bool ok = t != NULL;

	json_decref(t);
	return ok;
}

/* The names of the directory at dfd that are keys, sorted. In the kubelet's layout (all
 * is read inside ..data) names beginning with ".." are the writer's own, and a key may
 * begin with one '.'; in a plain directory every dot entry is skipped (editors' and
 * tools' temporary files). */
static int
list_keys(struct reader *r, int dfd, bool kubelet, char ***ret, size_t *ret_n)
{
	char **names = NULL;
	size_t n = 0, seen = 0;
	struct dirent *de;
	DIR *d;
	int fd, rc = 0;

	if ((fd = dup(dfd)) < 0)
		return refuse(r, -errno, "%s: %s", r->fs->path, strerror(errno));
	if ((d = fdopendir(fd)) == NULL) {
		rc = refuse(r, -errno, "%s: %s", r->fs->path, strerror(errno));
		close(fd);
		return rc;
	}
	names = calloc(BROKER_KEYS_MAX + 1, sizeof(*names));
	if (names == NULL) {
		rc = refuse(r, -ENOMEM, "out of memory");
		goto out;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		const char *nm = de->d_name;

		if (++seen > BROKER_FILE_ENTRIES_MAX) {
			rc = refuse(r, -E2BIG, "%s holds more than %d entries", r->fs->path,
				    BROKER_FILE_ENTRIES_MAX);
			goto out;
		}
		if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0)
			continue;
		if (kubelet ? strncmp(nm, "..", 2) == 0 : nm[0] == '.')
			continue;
		/* A key is JSON text, and so is the reason that would name it: a name that
		 * is not UTF-8 can be neither. */
		if (!utf8_valid(nm)) {
			rc = refuse(r, -EILSEQ, "%s holds a file whose name is not UTF-8, so it "
				    "cannot be a key", r->fs->path);
			goto out;
		}
		if (n == BROKER_KEYS_MAX) {
			rc = refuse(r, -E2BIG, "%s holds more than %d files; at most %d keys are "
				    "served", r->fs->path, BROKER_KEYS_MAX, BROKER_KEYS_MAX);
			goto out;
		}
		if ((names[n] = strdup(nm)) == NULL) {
			rc = refuse(r, -ENOMEM, "out of memory");
			goto out;
		}
		n++;
	}
	if (errno != 0) {
		rc = refuse(r, -errno, "%s: cannot list: %s", r->fs->path, strerror(errno));
		goto out;
	}
	qsort(names, n, sizeof(*names), name_cmp);
	*ret = names;
	*ret_n = n;
	names = NULL;
out:
	for (size_t i = 0; names != NULL && i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return rc;
}

static int
read_dir(struct reader *r, int dirfd)
{
	const struct broker_source_file *fs = r->fs;
	char **names = NULL, shown[BROKER_FILE_PATH_MAX + NAME_MAX + 2];
	size_t n = 0;
	bool kubelet;
	int src, rc;

	if (fs->key != NULL)
		return refuse(r, -EINVAL, "%s is a directory: \"key\" names the key of a single "
			      "file", fs->path);
	src = openat(dirfd, BROKER_KUBELET_DATA, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	kubelet = src >= 0;
	if (src < 0 && errno != ENOENT)
		return refuse(r, errno == ENOTDIR ? -EINVAL : -errno, "%s/%s: %s", fs->path,
			      BROKER_KUBELET_DATA, strerror(errno));
	if (src < 0 && (src = dup(dirfd)) < 0)
		return refuse(r, -errno, "%s: %s", fs->path, strerror(errno));
	if ((rc = list_keys(r, src, kubelet, &names, &n)) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		int fd;

		snprintf(shown, sizeof(shown), "%s/%s", fs->path, names[i]);
		fd = openat(src, names[i], O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd < 0 && errno == ENOENT) {
			/* Listed, then gone: the writer is at work (in the kubelet's layout, the
			 * directory read is the old one, being removed after a swap). */
			rc = refuse(r, -EAGAIN, "%s went away during the read: an update in "
				    "progress", shown);
			goto out;
		}
		if (fd < 0) {
			rc = refuse(r, -errno, "key %s (%s): cannot open: %s", names[i], shown,
				    strerror(errno));
			goto out;
		}
		if (fstat(fd, &st) < 0) {
			rc = refuse(r, -errno, "key %s (%s): %s", names[i], shown, strerror(errno));
			close(fd);
			goto out;
		}
		if (S_ISDIR(st.st_mode)) {
			close(fd);
			continue;   /* a Secret volume's items may make subdirectories */
		}
		if (!S_ISREG(st.st_mode)) {
			close(fd);
			rc = refuse(r, -EINVAL, "key %s (%s): not a regular file", names[i], shown);
			goto out;
		}
		rc = read_value(r, names[i], shown, fd);
		close(fd);
		if (rc < 0)
			goto out;
	}
	rc = 0;
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	close(src);
	return rc;
}

int
broker_source_file_read(const struct broker_source_file *fs, const struct lk_keyset *ks,
			json_t **ret_data, char *reason, size_t reasonlen)
{
	struct reader r = { fs, ks, NULL, reason, reasonlen };
	struct stat st;
	int fd, rc;

	if (reasonlen > 0)
		reason[0] = '\0';
	if (fs->decrypt && ks == NULL)
		return refuse(&r, -ENOKEY, "no decryption key loaded");
	fd = open(fs->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 && errno == ENOENT)
		return refuse(&r, -ENOENT, "%s does not exist (a volume not mounted yet, or a "
			      "wrong path)", fs->path);
	if (fd < 0)
		return refuse(&r, -errno, "%s: cannot open: %s", fs->path, strerror(errno));
	if ((r.data = json_object()) == NULL) {
		rc = refuse(&r, -ENOMEM, "out of memory");
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		rc = refuse(&r, -errno, "%s: %s", fs->path, strerror(errno));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = read_dir(&r, fd);
	} else if (S_ISREG(st.st_mode)) {
		const char *base = strrchr(fs->path, '/') + 1;
		const char *key = fs->key != NULL ? fs->key : base;

		rc = read_value(&r, key, fs->path, fd);
	} else {
		rc = refuse(&r, -EINVAL, "%s: not a regular file or a directory", fs->path);
	}
	if (rc < 0)
		goto out;
	*ret_data = r.data;
	r.data = NULL;
out:
	json_decref(r.data);
	close(fd);
	return rc;
}

int
broker_source_file_check_all(struct lk_cfg *c, struct broker_config *cfg)
{
	bool top_used = false;

	cfg->backend = false;
	for (size_t i = 0; i < cfg->nsecrets; i++) {
		const struct broker_source_file *fs = cfg->secrets[i].from_file;
		const struct broker_key_spec *k;

		if (fs == NULL) {
			cfg->backend = true;
			continue;
		}
		if (!fs->decrypt)
			continue;
		k = fs->decryption_key != NULL ? fs->decryption_key : cfg->decryption_key;
		top_used |= fs->decryption_key == NULL;
		cfg->backend |= k->vault_path != NULL;
	}
	if (cfg->decryption_key != NULL && !top_used)
		return fail_at(c, "decryption_key", "no secret uses it (it opens the values of "
			       "secrets with \"from_file\" and \"decrypt\": true that have no "
			       "decryption_key of their own)");
	return 0;
}

/* ---- the watcher thread ---- */

struct file_watch {
	size_t entry;
	int wd;                     /* the inotify watch of its directory; -1: none */
	int64_t due_mono_ms;        /* the next read */
	unsigned again;             /* reads in a row that met an update in progress */
	bool waiting_key;           /* the last read waited for its decryption key */
	bool warned_watch;          /* "cannot watch" was logged */
	char last_reason[FILES_REASON_MAX]; /* the failure last logged; "" after a success */
};

struct broker_files {
	struct broker *b;
	int ifd;                    /* inotify; -1 when there is none (then: polling) */
	int ifd_errno;              /* why there is none */
	int wake_fd;                /* eventfd: stop, or a decryption key came in */
	atomic_bool stop;
	pthread_t thread;
	bool running;
	struct file_watch *w;
	size_t n;
};

static bool
wd_shared(const struct broker_files *fl, const struct file_watch *w, int wd)
{
	for (size_t i = 0; i < fl->n; i++)
		if (&fl->w[i] != w && fl->w[i].wd == wd)
			return true;
	return false;
}

/* Watches the directory of the source: the directory itself, or the one that holds the
 * file (a rename over it, or the kubelet's ..data swap when the file is a key's link, is
 * an event there), or the parent of a directory that is not there yet (its creation is).
 * Watching what is already watched returns the same descriptor: sources in one
 * directory share a watch, and every event goes to each of them. */
static void
arm(struct broker_files *fl, struct file_watch *w)
{
	const struct broker_source_file *fs = fl->b->entries[w->entry].spec->from_file;
	char target[BROKER_FILE_PATH_MAX + 1];
	struct stat st;
	int wd;

	if (fl->ifd < 0)
		return;
	snprintf(target, sizeof(target), "%s", fs->path);
	if (stat(target, &st) < 0 || !S_ISDIR(st.st_mode)) {
		char *slash = strrchr(target, '/');

		if (slash == target)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	wd = inotify_add_watch(fl->ifd, target, WATCH_MASK);
	if (wd < 0 && errno != ENOENT && errno != ENOTDIR && !w->warned_watch) {
		/* Out of watches (fs.inotify.max_user_watches), or not permitted. */
		w->warned_watch = true;
		lk_log(LK_WARN, "cannot watch a file source: it is read every 2s instead",
		       LK_STR("secret", fl->b->entries[w->entry].spec->name),
		       LK_STR("directory", target), LK_STR("error", strerror(errno)));
	}
	if (wd < 0)
		wd = -1;
	if (w->wd >= 0 && w->wd != wd && !wd_shared(fl, w, w->wd))
		inotify_rm_watch(fl->ifd, w->wd);
	w->wd = wd;
}

static void
soon(struct file_watch *w, int64_t at)
{
	if (at < w->due_mono_ms)
		w->due_mono_ms = at;
}

static void
announce_ready(struct broker *b)
{
	char reason[BROKER_REASON_MAX];

	if (atomic_load(&b->announced_ready) || !broker_ready(b, reason, sizeof(reason)))
		return;
	if (!atomic_exchange(&b->announced_ready, true))
		lk_log(LK_INFO, "ready", LK_INT("secrets", b->n),
		       LK_INT("elapsed_ms", lk_now_mono_ms() - b->started_mono_ms));
}

/* A read that failed: the entry keeps what it serves (stale), or has nothing (failed);
 * read again after the entry's backoff, or sooner on an event. */
static void
source_failed(struct broker_files *fl, struct file_watch *w, const char *reason, int64_t now)
{
	struct broker_entry *e = &fl->b->entries[w->entry];
	enum broker_state st = broker_entry_state(e, now);
	bool urgent = e->spec->required && st != BROKER_STATE_VALID && st != BROKER_STATE_STALE;
	int64_t delay = broker_retry_delay(&e->backoff, urgent);

	/* Nothing will tell of a change: look often. */
	if (w->wd < 0 && delay > BROKER_FILE_POLL_MS)
		delay = BROKER_FILE_POLL_MS;
	w->due_mono_ms = now + delay;
	broker_metrics_event(fl->b->metrics, w->entry, BROKER_EV_REFRESH_FAILURE);
	pthread_mutex_lock(&e->lock);
	e->failing = true;
	broker_copy_text(e->reason, sizeof(e->reason), reason);
	e->next_mono_ms = w->due_mono_ms;
	e->next_action = BROKER_ACT_FETCH;
	pthread_mutex_unlock(&e->lock);
	/* The same failure again is not news. */
	lk_log(strcmp(reason, w->last_reason) != 0 ? LK_WARN : LK_DEBUG, "file source failed",
	       LK_STR("secret", e->spec->name), LK_STR("error", reason),
	       LK_BOOL("serving", st == BROKER_STATE_STALE || st == BROKER_STATE_VALID),
	       LK_INT("retry_in_ms", delay));
	broker_copy_text(w->last_reason, sizeof(w->last_reason), reason);
}

/* Why a snapshot could not be made (as the scheduler says it). */
static void
snapshot_reason(struct broker *b, int rc, const json_t *data, char *out, size_t outlen)
{
	if (rc == -E2BIG)
		snprintf(out, outlen, "the data read is larger than %u bytes, the most served",
			 (unsigned)LK_SECRET_MAX);
	else if (rc == -ENOLCK)
		snprintf(out, outlen, "its memory cannot be locked (require_mlock; RLIMIT_MEMLOCK "
			 "is %zu bytes): raise the limit or give the broker CAP_IPC_LOCK",
			 b->memlock.limit);
	else
		snprintf(out, outlen, "%s", "out of memory");
	(void)data;
}

/* A read that succeeded: a new version when the content changed, else only the time of
 * the next safety read. */
static void
source_loaded(struct broker_files *fl, struct file_watch *w, const json_t *data, int64_t now)
{
	struct broker *b = fl->b;
	struct broker_entry *e = &b->entries[w->entry];
	const struct broker_secret_spec *sp = e->spec;
	struct broker_snapshot *cur, *s = NULL, *old;
	struct broker_lease_info li;
	unsigned char digest[32];
	char why[BROKER_REASON_MAX];
	bool changed, first = !e->loaded;
	int64_t period = w->wd >= 0 ? sp->refresh_ms : BROKER_FILE_POLL_MS;
	int rc;

	if ((rc = broker_data_digest(b->arena, data, digest)) < 0) {
		snapshot_reason(b, rc, data, why, sizeof(why));
		source_failed(fl, w, why, now);
		return;
	}
	cur = broker_entry_snapshot(e);
	changed = cur == NULL || sodium_memcmp(cur->digest, digest, sizeof(digest)) != 0;
	broker_snapshot_unref(cur);
	w->due_mono_ms = broker_refresh_at(now, period, &e->backoff);
	if (!changed) {
		pthread_mutex_lock(&e->lock);
		e->failing = false;
		e->reason[0] = '\0';
		e->next_mono_ms = w->due_mono_ms;
		e->next_action = BROKER_ACT_FETCH;
		pthread_mutex_unlock(&e->lock);
		lk_backoff_reset(&e->backoff);
		broker_metrics_event(b->metrics, w->entry, BROKER_EV_REFRESH);
		if (w->last_reason[0] != '\0')
			lk_log(LK_INFO, "file source read again", LK_STR("secret", sp->name),
			       LK_INT("version", e->version));
		w->last_reason[0] = '\0';
		return;
	}
	memset(&li, 0, sizeof(li));
	rc = broker_snapshot_new(b->arena, sp->name, e->version + 1, data, &li, &s);
	if (rc < 0) {
		snapshot_reason(b, rc, data, why, sizeof(why));
		source_failed(fl, w, why, now);
		return;
	}
	e->version++;
	e->loaded = true;
	pthread_mutex_lock(&e->lock);
	old = e->current;
	e->current = s;
	e->failing = false;
	e->reason[0] = '\0';
	e->next_mono_ms = w->due_mono_ms;
	e->next_action = BROKER_ACT_FETCH;
	pthread_mutex_unlock(&e->lock);
	broker_snapshot_unref(old);
	lk_backoff_reset(&e->backoff);
	w->last_reason[0] = '\0';
	if (!first)
		broker_metrics_event(b->metrics, w->entry, BROKER_EV_REFRESH);
	lk_log(LK_INFO, first ? "secret loaded" : "secret changed", LK_STR("secret", sp->name),
	       LK_INT("version", e->version), LK_STR("source", "file"),
	       LK_INT("keys", json_object_size(data)), LK_BOOL("decrypted", sp->from_file->decrypt));
	broker_server_notify(b, w->entry);
	broker_render_outputs(b, w->entry);
	broker_exec_notify(b, w->entry);
	announce_ready(b);
}

static void
source_read(struct broker_files *fl, struct file_watch *w)
{
	struct broker *b = fl->b;
	struct broker_entry *e = &b->entries[w->entry];
	const struct broker_source_file *fs = e->spec->from_file;
	const struct lk_keyset *ks = NULL;
	char reason[FILES_REASON_MAX];
	json_t *data = NULL;
	int64_t now = lk_now_mono_ms();
	int rc;

	w->due_mono_ms = INT64_MAX;
	w->waiting_key = false;
	arm(fl, w);
	if (fs->decrypt) {
		bool failed = false;

		ks = broker_keyring_for(b, w->entry, reason, sizeof(reason), &failed);
		if (ks == NULL) {
			/* Read when the key comes in (broker_files_wake). */
			w->waiting_key = true;
			pthread_mutex_lock(&e->lock);
			e->failing = failed;
			broker_copy_text(e->reason, sizeof(e->reason), reason);
			pthread_mutex_unlock(&e->lock);
			return;
		}
	}
	rc = broker_source_file_read(fs, ks, &data, reason, sizeof(reason));
	if (rc == -EAGAIN && w->again < BROKER_FILE_AGAIN_MAX) {
		w->again++;
		w->due_mono_ms = now + BROKER_FILE_AGAIN_MS;
		return;
	}
	w->again = 0;
	if (rc < 0)
		source_failed(fl, w, reason, now);
	else
		source_loaded(fl, w, data, now);
	json_decref(data);
}

static void
drain_events(struct broker_files *fl, int64_t now)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	for (;;) {
		ssize_t n = read(fl->ifd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)(void *)p;

			p += sizeof(*ev) + ev->len;
			for (size_t i = 0; i < fl->n; i++) {
				struct file_watch *w = &fl->w[i];

				/* An overflow lost events: every source is read again. */
				if (!(ev->mask & IN_Q_OVERFLOW) && w->wd != ev->wd)
					continue;
				soon(w, now + BROKER_FILE_SETTLE_MS);
				if (ev->mask & IN_IGNORED)
					w->wd = -1;     /* the directory went: armed again at the read */
			}
		}
	}
}

static void *
files_main(void *arg)
{
	struct broker_files *fl = arg;
	short woken = 0, events = 0;

	while (!atomic_load(&fl->stop)) {
		int64_t now, next;
		struct pollfd pfd[2];

		/* Everything that touches the watches under the generation lock (a reload
		 * replaces them); only the wait outside it. */
		pthread_rwlock_rdlock(&fl->b->gen_lock);
		now = lk_now_mono_ms();
		if (woken & POLLIN) {
			uint64_t count;

			if (read(fl->wake_fd, &count, sizeof(count)) < 0)
				count = 0;
			for (size_t i = 0; i < fl->n; i++)
				if (fl->w[i].waiting_key)
					soon(&fl->w[i], now);
		}
		if (events & POLLIN)
			drain_events(fl, now);
		for (size_t i = 0; i < fl->n && !atomic_load(&fl->stop); i++) {
			if (fl->w[i].due_mono_ms <= now) {
				source_read(fl, &fl->w[i]);
				now = lk_now_mono_ms();
			}
		}
		next = now + FILES_IDLE_MAX_MS;
		for (size_t i = 0; i < fl->n; i++)
			if (fl->w[i].due_mono_ms < next)
				next = fl->w[i].due_mono_ms;
		pthread_rwlock_unlock(&fl->b->gen_lock);
		pfd[0].fd = fl->wake_fd;
		pfd[0].events = POLLIN;
		pfd[1].fd = fl->ifd;        /* -1: poll skips it */
		pfd[1].events = POLLIN;
		pfd[0].revents = pfd[1].revents = 0;
		if (poll(pfd, 2, next > now ? (int)(next - now) : 0) < 0)
			pfd[0].revents = pfd[1].revents = 0;
		woken = pfd[0].revents;
		events = pfd[1].revents;
	}
	return NULL;
}

/* Starts the thread (with no source yet, it waits for a wake). At start, or at the reload
 * that adds the first file source: the allow-list (seccomp.c) lets a thread be made. */
static int
files_thread_start(struct broker_files *fl, struct lk_error *err)
{
	int rc;

	if (fl->ifd < 0)
		lk_log(LK_WARN, "inotify is not available: file sources are read every 2s instead",
		       LK_STR("error", strerror(fl->ifd_errno)));
	rc = pthread_create(&fl->thread, NULL, files_main, fl);
	if (rc != 0)
		return lk_error_set(err, -rc, "cannot start a thread: %s", strerror(rc));
	fl->running = true;
	return 0;
}

struct broker_files_next {
	struct broker_keyring_next *keys;
	struct file_watch *w;       /* room for the watches of the new configuration */
	size_t *watch_of_old;       /* per old entry: its watch, or SIZE_MAX (filled at remap) */
	bool *rekeyed;              /* per new entry: its decryption key was replaced */
};

void
broker_files_next_free(struct broker_files_next *next)
{
	if (next == NULL)
		return;
	broker_keyring_next_free(next->keys);
	free(next->w);
	free(next->watch_of_old);
	free(next->rekeyed);
	free(next);
}

int
broker_files_prepare(struct broker *b, const struct broker_config *nc,
		     struct lk_vault_client *client, struct broker_files_next **ret,
		     struct lk_error *err)
{
	struct broker_files_next *next = calloc(1, sizeof(*next));
	bool sources = false;
	int rc;

	if (next == NULL || (next->w = calloc(nc->nsecrets + 1, sizeof(*next->w))) == NULL ||
	    (next->watch_of_old = calloc(b->n + 1, sizeof(*next->watch_of_old))) == NULL ||
	    (next->rekeyed = calloc(nc->nsecrets + 1, sizeof(*next->rekeyed))) == NULL) {
		broker_files_next_free(next);
		return lk_error_set(err, -ENOMEM, "out of memory");
	}
	if ((rc = broker_keyring_prepare(b, nc, client, &next->keys, err)) < 0) {
		broker_files_next_free(next);
		return rc;
	}
	for (size_t i = 0; i < nc->nsecrets && !sources; i++)
		sources = nc->secrets[i].from_file != NULL;
	/* The first file source: the thread starts now, before the generation lock, so that
	 * a failure changes nothing; it waits, with no source, for the remap's wake. */
	if (sources && b->files != NULL && !b->files->running &&
	    (rc = files_thread_start(b->files, err)) < 0) {
		broker_files_next_free(next);
		return rc;
	}
	*ret = next;
	return 0;
}

void
broker_files_remap(struct broker *b, const size_t *old_of_new, const bool *moved, size_t new_n,
		   struct broker_files_next *next)
{
	struct broker_files *fl = b->files;
	struct file_watch *old;
	size_t m = 0, old_entries;
	uint64_t one = 1;

	broker_keyring_remap(b, next->keys, new_n, next->rekeyed);
	next->keys = NULL;
	if (fl == NULL) {
		broker_files_next_free(next);
		return;
	}
	/* The watches are the thread's own, and it is outside its round (the generation lock
	 * is held for writing). The old entries numbered as many as watch_of_old has room. */
	old_entries = 0;
	for (size_t i = 0; i < fl->n; i++)
		if (fl->w[i].entry + 1 > old_entries)
			old_entries = fl->w[i].entry + 1;
	for (size_t o = 0; o < old_entries; o++)
		next->watch_of_old[o] = SIZE_MAX;
	for (size_t i = 0; i < fl->n; i++)
		next->watch_of_old[fl->w[i].entry] = i;
	for (size_t i = 0; i < new_n; i++) {
		struct file_watch *w;
		size_t o = old_of_new[i], k;

		if (b->entries[i].spec->from_file == NULL)
			continue;
		w = &next->w[m++];
		k = o != SIZE_MAX && moved[i] && o < old_entries ? next->watch_of_old[o] : SIZE_MAX;
		if (k != SIZE_MAX) {
			*w = fl->w[k];
			fl->w[k].entry = SIZE_MAX;      /* taken over */
			/* Opened again with the key that replaced the old one. */
			if (next->rekeyed[i]) {
				w->due_mono_ms = 0;
				w->again = 0;
			}
		} else {
			memset(w, 0, sizeof(*w));
			w->wd = -1;
			w->due_mono_ms = 0;             /* read at the thread's next round */
		}
		w->entry = i;
	}
	/* The watches of the sources gone, unless a source that stays shares one. */
	for (size_t i = 0; i < fl->n; i++) {
		int wd = fl->w[i].wd;
		bool shared = false;

		if (fl->w[i].entry == SIZE_MAX || wd < 0 || fl->ifd < 0)
			continue;
		for (size_t j = 0; j < m && !shared; j++)
			shared = next->w[j].wd == wd;
		for (size_t j = i + 1; j < fl->n && !shared; j++)
			if (fl->w[j].wd == wd)
				fl->w[j].wd = -1;       /* the same watch: removed once */
		if (!shared)
			inotify_rm_watch(fl->ifd, wd);
	}
	old = fl->w;
	fl->w = next->w;
	fl->n = m;
	next->w = old;
	broker_files_next_free(next);
	/* The new sources are read now, not at the end of the thread's wait. */
	if (write(fl->wake_fd, &one, sizeof(one)) < 0) {
		/* A full counter wakes the thread anyway. */
	}
}

void
broker_files_wake(struct broker *b)
{
	uint64_t one = 1;

	if (b->files != NULL && b->files->wake_fd >= 0 &&
	    write(b->files->wake_fd, &one, sizeof(one)) < 0) {
		/* A full counter (2^64 - 2 wakes pending) wakes the thread anyway. */
	}
}

int
broker_files_start(struct broker *b, struct lk_error *err)
{
	struct broker_files *fl;
	size_t n = 0;
	int rc;

	for (size_t i = 0; i < b->n; i++)
		n += b->entries[i].spec->from_file != NULL;
	if ((rc = broker_keyring_new(b, err)) < 0)
		return rc;
	fl = calloc(1, sizeof(*fl));
	if (fl == NULL)
		return lk_error_set(err, -ENOMEM, "out of memory");
	b->files = fl;
	fl->b = b;
	fl->ifd = -1;
	atomic_init(&fl->stop, false);
	fl->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	fl->w = calloc(n + 1, sizeof(*fl->w));
	if (fl->wake_fd < 0 || fl->w == NULL)
		return lk_error_set(err, fl->w == NULL ? -ENOMEM : -errno, "file sources: %s",
				    fl->w == NULL ? "out of memory" : strerror(errno));
	for (size_t i = 0; i < b->n; i++) {
		if (b->entries[i].spec->from_file == NULL)
			continue;
		fl->w[fl->n].entry = i;
		fl->w[fl->n].wd = -1;
		fl->w[fl->n].due_mono_ms = 0;
		fl->n++;
	}
	/* Made here, also without a file source, before the allow-list (seccomp.c) is
	 * installed: after it only watches are added and removed, so that a reload can add
	 * the first file source. The thread waits for that source. */
	fl->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	fl->ifd_errno = fl->ifd < 0 ? errno : 0;
	if (n == 0)
		return 0;
	return files_thread_start(fl, err);
}

void
broker_files_stop(struct broker *b)
{
	struct broker_files *fl = b->files;
	uint64_t one = 1;

	if (fl == NULL || !fl->running)
		return;
	atomic_store(&fl->stop, true);
	if (write(fl->wake_fd, &one, sizeof(one)) < 0) {
		/* The thread also looks at the flag at least once a minute. */
	}
	pthread_join(fl->thread, NULL);
	fl->running = false;
}

void
broker_files_free(struct broker *b)
{
	struct broker_files *fl = b->files;

	broker_files_stop(b);
	if (fl != NULL) {
		if (fl->ifd >= 0)
			close(fl->ifd);
		if (fl->wake_fd >= 0)
			close(fl->wake_fd);
		free(fl->w);
		free(fl);
		b->files = NULL;
	}
	broker_keyring_free(b);
}
