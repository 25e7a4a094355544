/* fuzz_k8s_watch.c — the informer's watch stream: newline-delimited JSON events (ADDED,
 * MODIFIED, DELETED, BOOKMARK, ERROR with 410 handling) split into lines across reads and
 * applied to the cache (k8s_informer_feed in k8s/informer.c).
 *
 * The first input byte picks how the body arrives: its low 7 bits the chunk size handed
 * to the stream callback per call (0: the whole body at once), its high bit the cache's
 * transform: none (the object without managedFields, as the ExternalSecret and store
 * informers keep it) or the controller's Secret cache transform (metadata and a keyed
 * hash of the data). The rest is the body.
 *
 * Checked: the handlers see every object the cache gains and loses (additions less
 * removals is what stays cached), and every object they are given is a JSON object. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "k8s/internal.h"
#include "sync/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The largest body tried: several events, some lines split across many reads. */
#define FUZZ_BODY_MAX (256u << 10)

struct counts {
	size_t adds, updates, deletes;
};

static void
check_object(const json_t *obj)
{
	if (!json_is_object(obj))
		abort();
}

static void
on_add(void *arg, const json_t *obj)
{
	struct counts *c = arg;

	check_object(obj);
	c->adds++;
}

static void
on_update(void *arg, const json_t *old, const json_t *obj)
{
	struct counts *c = arg;

	check_object(old);
	check_object(obj);
	c->updates++;
}

static void
on_delete(void *arg, const json_t *obj)
{
	struct counts *c = arg;

	check_object(obj);
	c->deletes++;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sync_ctx ctx; /* only its hash key (zero) is read */
	static int ready;
	struct counts c = { 0 };
	struct lk_k8s_informer_config cfg = {
		.resource = &lk_k8s_secrets,
		.handlers = { .on_add = on_add, .on_update = on_update, .on_delete = on_delete, .arg = &c },
	};
	size_t chunk, cached = 0;
	int rc;

	if (size < 1 || size > FUZZ_BODY_MAX)
		return 0;
	if (!ready) {
		/* As `latchkey` does first thing in main(). */
		lk_json_wipe_on_free();
		if (lk_secret_init() < 0)
			abort();
		ready = 1;
	}
	chunk = data[0] & 0x7f;
	if (data[0] & 0x80) {
		cfg.transform = sync_secret_transform;
		cfg.transform_arg = &ctx;
	}
	rc = k8s_informer_feed(&cfg, (const char *)data + 1, size - 1, chunk, &cached);
	if (rc != 0 && rc != -ESTALE && rc != -EBADMSG)
		abort();
	if (c.deletes > c.adds || c.adds - c.deletes != cached)
		abort();
	return 0;
}
